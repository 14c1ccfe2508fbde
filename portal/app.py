"""The application factory."""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask

from catalogue import load_catalogue
from portal import lifecycle
from portal.auth import csrf
from portal.auth.backends import make_identity_backend
from portal.auth.current import current_user
from portal.config import ConfigError, Settings, load_settings
from portal.db import make_engine, make_session_factory
from portal.migrate import is_current
from portal.runtime import EXTENSION_KEY, Runtime

log = logging.getLogger(__name__)


def create_app(config_override: dict[str, Any] | None = None) -> Flask:
    """Build a portal application from the effective configuration.

    Returns the Flask app. Raises :class:`ConfigError` for bad configuration or a database
    that has not been migrated (run ``daaas db upgrade``). A broken catalogue entry never
    stops the portal: it is left out and shown to administrators as invalid.
    """
    settings = load_settings(config_override)
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=settings.secret_key or _stored_secret_key(settings),
        SESSION_COOKIE_NAME="daaas_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.session_cookie_secure,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.session_lifetime_minutes),
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    app.extensions[EXTENSION_KEY] = _build_runtime(settings)
    _register(app)
    return app


def _build_runtime(settings: Settings) -> Runtime:
    engine = make_engine(settings.effective_database_url)
    if not is_current(engine):
        raise ConfigError(f"The database at {engine.url.render_as_string(hide_password=True)} "
                          "is not at the newest schema. Run `daaas db upgrade` first.")
    catalogue = load_catalogue(Path(settings.catalogue_dir))
    for problem in catalogue.problems:
        log.warning("catalogue: %s", problem)
    return Runtime(settings=settings, engine=engine,
                   session_factory=make_session_factory(engine), catalogue=catalogue,
                   identity=make_identity_backend(settings))


def _register(app: Flask) -> None:
    from portal.admin.views import blueprint as admin
    from portal.analysis.views import blueprint as analysis
    from portal.api.views import blueprint as api
    from portal.auth.views import blueprint as auth

    for blueprint in (auth, analysis, admin, api):
        app.register_blueprint(blueprint)
    lifecycle.install(app)
    csrf.install(app)
    app.jinja_env.globals["current_user"] = current_user


def _stored_secret_key(settings: Settings) -> str:
    """Return the secret key kept in var_dir, creating it (mode 600) on first start."""
    path = settings.var_path / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(48), encoding="utf-8")
    return path.read_text(encoding="utf-8").strip()
