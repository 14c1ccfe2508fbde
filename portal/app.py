"""The application factory."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any, TypeVar

from flask import Flask

from daaas.portal import conditional, lifecycle, security
from daaas.portal.analysis.service import load_site_catalogue
from daaas.portal.auth import csrf
from daaas.portal.auth.backends import IDENTITY_BACKENDS
from daaas.portal.auth.current import current_user
from daaas.portal.backends import BackendUnavailable, Registry
from daaas.portal.config import (
    ConfigError,
    Settings,
    load_settings,
    resolve_secret_key,
    secure_var_dir,
)
from daaas.portal.db import make_engine, make_session_factory
from daaas.portal.experiments.backends import EXPERIMENT_BACKENDS
from daaas.portal.hpc.backend import HPC_BACKENDS
from daaas.portal.machines.changes import announce_changes
from daaas.portal.machines.wakeup import wake_on_intent
from daaas.portal.migrate import is_current
from daaas.portal.providers import PROVIDERS
from daaas.portal.runtime import EXTENSION_KEY, Runtime
from daaas.portal.storage.backends import STORAGE_BACKENDS

log = logging.getLogger(__name__)
B = TypeVar("B")


def create_app(config_override: dict[str, Any] | None = None) -> Flask:
    """Build a portal application from the effective configuration.

    Returns the Flask app. Raises :class:`ConfigError` for bad configuration or a database
    that has not been migrated (run ``daaas db upgrade``). A broken catalogue entry never
    stops the portal: it is left out and shown to administrators as invalid.
    """
    settings = load_settings(config_override)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=resolve_secret_key(settings),
        SESSION_COOKIE_NAME="daaas_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_lifetime_minutes),
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    app.extensions[EXTENSION_KEY] = _build_runtime(settings)
    _register(app)
    # My Data page and WebDAV at /dav/ (portal/storage): one block, kept apart on purpose.
    from daaas.portal.storage.views import blueprint as my_data
    from daaas.portal.storage.webdav import mount_webdav

    app.register_blueprint(my_data)
    if settings.webdav_enabled:
        mount_webdav(app)
    security.install(app, settings)  # last: its WSGI wrappers go round WebDAV too
    return app


def _build_runtime(settings: Settings) -> Runtime:
    secure_var_dir(settings)
    engine = make_engine(settings.effective_database_url)
    if not is_current(engine):
        raise ConfigError(f"The database at {engine.url.render_as_string(hide_password=True)} "
                          "is not at the newest schema. Run `daaas db upgrade` first.")
    catalogue = load_site_catalogue(settings)
    for problem in catalogue.problems:
        log.warning("catalogue: %s", problem)
    for lazy in (STORAGE_BACKENDS, HPC_BACKENDS):  # built at first use: check the name now
        _check_name(lazy, settings)
    session_factory = make_session_factory(engine)
    wake_on_intent(session_factory)  # a launch, stop, start or delete wakes the worker at once
    announce_changes(session_factory)  # pages waiting for a machine learn it changed (push)
    return Runtime(settings=settings, engine=engine, session_factory=session_factory,
                   catalogue=catalogue, identity=_built(IDENTITY_BACKENDS, settings),
                   provider=_built(PROVIDERS, settings),
                   experiments=_built(EXPERIMENT_BACKENDS, settings))


def _built(registry: Registry[B], settings: Settings) -> B:
    """Return the backend the settings choose; raises ConfigError naming the setting when it is
    unknown or cannot be built."""
    try:
        return registry.build(settings)
    except BackendUnavailable as exc:
        raise _config_error(registry, exc) from None


def _check_name(registry: Registry[Any], settings: Settings) -> None:
    """Raise ConfigError naming the setting when the backend it names is unknown or does not
    import (for backends built only at first use)."""
    try:
        registry.resolve(str(getattr(settings, registry.setting)))
    except BackendUnavailable as exc:
        raise _config_error(registry, exc) from None


def _config_error(registry: Registry[Any], exc: BackendUnavailable) -> ConfigError:
    return ConfigError(f"Configuration key '{registry.setting}': {exc.user_message}")


def _register(app: Flask) -> None:
    from daaas.portal.access.api import blueprint as access_api
    from daaas.portal.access.views import blueprint as access
    from daaas.portal.admin.api import blueprint as admin_api
    from daaas.portal.admin.lifetimes import blueprint as admin_lifetimes
    from daaas.portal.admin.views import blueprint as admin
    from daaas.portal.analysis.views import blueprint as analysis
    from daaas.portal.api.views import blueprint as api
    from daaas.portal.audit.views import api as audit_api
    from daaas.portal.audit.views import blueprint as audit
    from daaas.portal.auth.account import blueprint as account
    from daaas.portal.auth.views import blueprint as auth
    from daaas.portal.bootstrap.api import blueprint as context_api
    from daaas.portal.experiments.api import blueprint as experiments_api
    from daaas.portal.experiments.views import blueprint as experiments
    from daaas.portal.hpc.api import blueprint as hpc_api
    from daaas.portal.hpc.views import blueprint as hpc
    from daaas.portal.machines.api import blueprint as machines_api
    from daaas.portal.machines.views import blueprint as machines
    from daaas.portal.metrics.views import blueprint as metrics
    from daaas.portal.quotas.api import blueprint as quotas_api
    from daaas.portal.quotas.views import blueprint as quotas
    from daaas.portal.sharing.views import api as sharing_api
    from daaas.portal.sharing.views import pages as sharing
    from daaas.portal.sshkeys.api import blueprint as sshkeys_api
    from daaas.portal.sshkeys.views import blueprint as sshkeys

    for blueprint in (auth, analysis, machines, machines_api, access, access_api, admin, api,
                      admin_api,
                      experiments, experiments_api,
                      context_api, hpc, hpc_api, account, sshkeys, sshkeys_api,
                      audit, audit_api, quotas, quotas_api, sharing, sharing_api):
        app.register_blueprint(blueprint)
    app.register_blueprint(admin_lifetimes)  # /admin/lifetimes (portal/admin/lifetimes.py)
    from daaas.portal.pools.views import blueprint as admin_pools
    app.register_blueprint(admin_pools)  # /admin/pools (portal/pools/views.py)
    from daaas.portal.pools.api import blueprint as admin_pools_api
    app.register_blueprint(admin_pools_api)  # /api/v1/admin/pools (portal/pools/api.py)
    app.register_blueprint(metrics)  # /metrics for Prometheus (portal/metrics)
    lifecycle.install(app)
    csrf.install(app)
    conditional.install(app)  # ETag and 304 for the polled lists
    app.jinja_env.globals["current_user"] = current_user

