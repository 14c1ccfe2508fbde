"""The ``daaas`` command line."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from sqlalchemy import select

from daaas.portal import migrate
from daaas.portal.auth import service as auth_service
from daaas.portal.auth.models import User
from daaas.portal.config import ConfigError, Settings, load_settings
from daaas.portal.db import make_engine, make_session_factory, unit_of_work
from daaas.portal.demo import DEMO_USERS, create_demo_users
from daaas.portal.errors import PortalError
from daaas.portal.experiments.demo import create_demo_experiments


def _settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _factory(settings: Settings):  # type: ignore[no-untyped-def]
    return make_session_factory(make_engine(settings.effective_database_url))


@click.group()
def main() -> None:
    """daaas: Data-Analysis-as-a-Service portal for research facilities."""


@main.command()
@click.option("--host", help="Listen address (default from configuration).")
@click.option("--port", type=int, help="Listen port (default from configuration).")
def serve(host: str | None, port: int | None) -> None:
    """Start the portal: migrate, create demo users if empty, start the desktop proxy and the
    reconciler (embedded mode), serve until interrupted."""
    import signal

    import waitress

    from daaas.portal.app import create_app
    from daaas.portal.runtime import runtime

    settings = _settings()
    _configure_logging(settings)
    settings.var_path.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(make_engine(settings.effective_database_url))
    with unit_of_work(_factory(settings)) as db:
        created = create_demo_users(db, settings) if settings.demo_data else []
        if created:
            create_demo_experiments(db, settings)
    override = {k: v for k, v in (("host", host), ("port", port)) if v is not None}
    app = _create_app(create_app, override)
    host, port = host or settings.host, port or settings.port
    # SIGTERM ends serve like Ctrl-C, so the desktop proxy and the reconciler stop cleanly.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with _background_services(runtime(app)):
        _announce(f"http://{host}:{port}/", bool(created) or settings.demo_data)
        # waitress refuses bodies over 1 GiB by default: let an upload be as large as a quota.
        waitress.serve(app, host=host, port=port, threads=8, ident="daaas",
                       max_request_body_size=settings.storage_quota_gb * 1024**3)


@main.command()
def worker() -> None:
    """Run the reconciler in the foreground (several may run against PostgreSQL)."""
    import signal

    from daaas.portal.app import create_app
    from daaas.portal.machines.worker import WorkerThread
    from daaas.portal.runtime import runtime

    settings = _settings()
    _configure_logging(settings)
    thread = WorkerThread(runtime(_create_app(create_app, {})))
    signal.signal(signal.SIGTERM, lambda *_: thread.stop_event.set())
    thread.start()
    click.echo(f"daaas worker: reconciling every {settings.reconcile_interval_seconds} s")
    try:
        while thread.is_alive():
            thread.join(1.0)
    except KeyboardInterrupt:
        thread.stop()


@main.command()
@click.option("--delete", "remove", is_flag=True, help="Remove the orphans at the provider.")
def orphans(remove: bool) -> None:
    """List what the provider runs for the portal without a live machine (and remove it)."""
    from daaas.portal.app import create_app
    from daaas.portal.machines.orphans import find_orphans
    from daaas.portal.runtime import runtime

    rt = runtime(_create_app(create_app, {}))
    with _portal_errors(), rt.session_factory() as db:
        found = find_orphans(db, rt.provider)
        for machine_id in found:
            if remove:
                rt.provider.delete(machine_id)
            click.echo(f"{machine_id}\t{'removed' if remove else 'orphan'}")
    click.echo(f"{len(found)} orphan(s) at the {rt.provider.name} provider")


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(level=settings.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # At DEBUG these log request bodies, user_data and tokens included: never below INFO.
    for noisy in ("keystoneauth", "openstack", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.INFO, logging.getLogger().level))


def _create_app(factory: Any, override: dict[str, Any]) -> Any:
    try:
        return factory(override)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@contextmanager
def _background_services(rt: Any) -> Iterator[None]:
    """The desktop proxy and the reconciler thread, when the settings ask for them."""
    from daaas.portal.access.proxy import ProxyError, start_proxy
    from daaas.portal.machines.worker import WorkerThread

    settings = rt.settings
    try:
        proxy = start_proxy(settings, settings.effective_database_url) \
            if settings.start_websockify else None
    except ProxyError as exc:
        raise click.ClickException(str(exc)) from None
    thread = WorkerThread(rt) if settings.embedded_worker else None
    if thread is not None:
        thread.start()
    try:
        yield
    finally:
        if thread is not None:
            thread.stop()
        if proxy is not None:
            proxy.stop()


def _announce(url: str, demo: bool) -> None:
    click.echo(f"daaas portal: {url}")
    if demo:
        for user in DEMO_USERS:
            role = "admin" if user.is_admin else "user"
            click.echo(f"  demo {role}: {user.username} / {user.password}")
    sys.stdout.flush()


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Migrate the database to the newest schema."""
    settings = _settings()
    settings.var_path.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(make_engine(settings.effective_database_url))
    click.echo("Database is at the newest schema.")


@main.group()
def config() -> None:
    """Configuration."""


@config.command("show")
def config_show() -> None:
    """Print the effective configuration with secrets masked."""
    click.echo(json.dumps(_settings().masked(), indent=2, sort_keys=True))


@main.group()
def users() -> None:
    """Local accounts."""


@users.command("add")
@click.argument("username")
@click.option("--name", "display_name", default="", help="Full name.")
@click.option("--email", default="")
@click.option("--admin", is_flag=True, help="Make the user a portal administrator.")
@click.option("--group", "groups", multiple=True, help="Group (repeatable).")
@click.option("--instrument", "instruments", multiple=True, help="Instrument (repeatable).")
@click.password_option(help="Password (prompted, or from stdin with --password -).")
def users_add(username: str, display_name: str, email: str, admin: bool,
              groups: tuple[str, ...], instruments: tuple[str, ...], password: str) -> None:
    """Create a local account with the next free POSIX uid."""
    settings = _settings()
    with _portal_errors(), unit_of_work(_factory(settings)) as session:
        user = auth_service.create_user(session, settings, username, password,
                                        display_name=display_name, email=email,
                                        groups=list(groups), instruments=list(instruments),
                                        is_admin=admin)
        click.echo(f"Created {user.username} (uid {user.uid}, gid {user.gid}).")


@users.command("list")
def users_list() -> None:
    """List accounts."""
    with unit_of_work(_factory(_settings())) as session:
        for user in session.scalars(select(User).order_by(User.username)):
            flags = " admin" if user.is_admin else ""
            click.echo(f"{user.username}\tuid={user.uid}\tgroups={','.join(user.groups)}"
                       f"\tinstruments={','.join(user.instruments)}{flags}")


@users.command("set-password")
@click.argument("username")
@click.password_option()
def users_set_password(username: str, password: str) -> None:
    """Replace a user's password."""
    with _portal_errors(), unit_of_work(_factory(_settings())) as session:
        auth_service.set_password(session, username, password)
    click.echo(f"Password of {username} changed.")


@main.group()
def tokens() -> None:
    """Personal API tokens."""


@tokens.command("create")
@click.argument("username")
@click.option("--name", default="cli", help="What the token is for.")
@click.option("--days", type=int, help="Lifetime in days (default from configuration).")
def tokens_create(username: str, name: str, days: int | None) -> None:
    """Create an API token for USERNAME and print it (shown only once)."""
    settings = _settings()
    with _portal_errors(), unit_of_work(_factory(settings)) as session:
        user = auth_service.get_user(session, username)
        _token, secret = auth_service.create_token(session, user, name,
                                                   days or settings.api_token_lifetime_days)
    click.echo(secret)


@contextmanager
def _portal_errors() -> Iterator[None]:
    """Turn a PortalError into a clean command-line error."""
    try:
        yield
    except PortalError as exc:
        raise click.ClickException(exc.user_message) from None


def _attach_catalogue() -> None:
    from daaas.catalogue.cli import catalogue_group

    main.add_command(catalogue_group)


def _attach_context() -> None:
    from daaas.portal.bootstrap.cli import context_group

    main.add_command(context_group)


_attach_catalogue()
_attach_context()


def _attach_images() -> None:
    from daaas.vm_images.cli import images_group

    main.add_command(images_group)


_attach_images()
