"""The ``daaas`` command line."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from daaas.portal import migrate
from daaas.portal.audit.service import operator, record
from daaas.portal.auth import service as auth_service
from daaas.portal.auth import tokens as api_tokens
from daaas.portal.auth.models import User
from daaas.portal.cli_errors import ErrorGroup
from daaas.portal.config import (
    ConfigError,
    Settings,
    check_secret_key_private,
    load_settings,
    secure_var_dir,
)
from daaas.portal.db import make_engine, make_session_factory, unit_of_work
from daaas.portal.demo import DEMO_USERS, create_demo_users
from daaas.portal.errors import NotFound
from daaas.portal.experiments import service as experiments_service
from daaas.portal.experiments.backends import EXPERIMENT_BACKENDS
from daaas.portal.experiments.demo import create_demo_experiments

F = TypeVar("F", bound=Callable[..., Any])
STDIN = "-"


def _settings() -> Settings:
    return load_settings()


def _factory(settings: Settings):  # type: ignore[no-untyped-def]
    return make_session_factory(make_engine(settings.effective_database_url))


@click.group(cls=ErrorGroup)
def main() -> None:
    """daaas: Data-Analysis-as-a-Service portal for research facilities.

    Every subcommand reports a problem as one line on stderr and exits non-zero.
    """


def _password_from_stdin(ctx: click.Context, param: click.Parameter, value: str) -> str:
    """Return the password; ``-`` means the first line of standard input (newline removed)."""
    if value != STDIN:
        return value
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise click.ClickException("Standard input gave no password for --password -: pipe "
                                   "one line, e.g. `printf '%s\\n' \"$PASS\" | daaas users ...`.")
    return password


def _password_option(command: F) -> F:
    """The --password option: prompted twice, given, or read from stdin with ``-``."""
    option = click.password_option(
        help="Password (prompted twice when omitted; '-' reads one line from stdin).",
        callback=_password_from_stdin)
    return option(command)


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

    os.umask(0o077)  # what the portal writes is its own unless given to someone on purpose
    settings = _settings()
    _configure_logging(settings)
    check_secret_key_private(settings)
    secure_var_dir(settings)
    _warn_single_user(settings)
    _provide_software(settings)
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
    try:
        # waitress refuses bodies over 1 GiB by default with a bare 413. Let a body one MiB
        # larger than the quota through so the portal answers "too large" in the quota's words.
        body_limit = settings.storage_quota_gb * 1024**3 + 1024**2
        server = waitress.create_server(app, host=host, port=port, threads=8, ident="daaas",
                                        max_request_body_size=body_limit)
    except OSError as exc:
        raise ConfigError(f"The portal cannot listen on {host}:{port}: {exc.strerror or exc}. "
                          "Stop the program using it, or choose another with --port or the "
                          "port setting (DAAAS_PORT).") from None
    with _background_services(runtime(app)):
        _announce(f"http://{host}:{port}/", bool(created) or settings.demo_data)
        server.run()


def _warn_single_user(settings: Settings) -> None:
    """Say at start when local desktops cannot run under each user's own account."""
    if settings.provider != "local":
        return
    from daaas.portal.providers.local.accounts import isolation_notice

    notice = isolation_notice(settings.local_single_user_mode)
    if notice:
        logging.getLogger("daaas.portal").warning("%s", notice)
        click.echo(f"WARNING: {notice}", err=True)


def _provide_software(settings: Settings) -> None:
    """Local provider: build the software source from Debian packages in local_software_dir;
    as root, also show it at /cvmfs/<repository> (see :mod:`daaas.cvmfs.local_source`, which
    logs a missing package as a warning and what it mounted or left alone). Not root (no mount
    possible), desktops find it through the software roots
    (:func:`daaas.portal.providers.local.roots.site_roots`). A failure leaves the environments
    that need it unavailable and never stops the start."""
    if settings.provider != "local" or not settings.local_software_dir:
        return
    from pathlib import Path

    from daaas.cvmfs.local_source import SourceError, build, load_source, provide

    try:
        if os.geteuid() == 0:
            provide(Path(settings.local_software_dir))
        else:
            build(Path(settings.local_software_dir), load_source())
    except (SourceError, OSError) as error:
        logging.getLogger("daaas.portal").warning(
            "the local software source could not be built: %s", error)


@main.command()
def worker() -> None:
    """Run the reconciler in the foreground (several may run against PostgreSQL)."""
    import signal

    from daaas.portal.app import create_app
    from daaas.portal.machines.worker import WorkerThread
    from daaas.portal.runtime import runtime

    os.umask(0o077)
    settings = _settings()
    _configure_logging(settings)
    check_secret_key_private(settings)
    _provide_software(settings)
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
    with rt.session_factory() as db:
        found = find_orphans(db, rt.provider)
        for machine_id in found:
            if remove:
                rt.provider.delete(machine_id)
            click.echo(f"{machine_id}\t{'removed' if remove else 'orphan'}")
    click.echo(f"{len(found)} orphan(s) at the {rt.provider.name} provider")


@main.group()
def machines() -> None:
    """Machines: what the lifetime policy would do."""


@machines.command("expire")
@click.option("--dry-run", is_flag=True, required=True,
              help="Only show what the policy would do now (the worker does it).")
def machines_expire(dry_run: bool) -> None:
    """Show the machines the lifetime policy would delete, warn or stop as idle now."""
    from daaas.portal.app import create_app
    from daaas.portal.db import utcnow
    from daaas.portal.machines.policy import policy_plan
    from daaas.portal.runtime import runtime

    rt = runtime(_create_app(create_app, {}))
    with rt.session_factory() as db:
        plan = policy_plan(db, rt.settings, utcnow(), stop_idle=rt.provider.supports_stop)
        for item in plan:
            click.echo(f"{item.action}\t{item.machine.id}\t{item.machine.user.username}\t"
                       f"{item.machine.name}\t{item.detail}")
    click.echo(f"{len(plan)} action(s) due; the worker takes them (nothing was changed)")


@main.group()
def homes() -> None:
    """Home folders of machines deleted by the lifetime policy, kept for home_grace_days."""


@homes.command("list")
def homes_list() -> None:
    """List the kept home folders: machine, owner, name, kept until."""
    from daaas.portal.machines.homes import list_kept

    settings = load_settings()
    with _factory(settings)() as db:
        kept = list_kept(db)
        for home in kept:
            click.echo(f"{home.machine_id}\t{home.user.username}\t{home.machine.name}\t"
                       f"{home.status}\tuntil {_minute(home.purge_after)}")
    click.echo(f"{len(kept)} home folder(s) kept")


@homes.command("restore")
@click.argument("machine")
def homes_restore(machine: str) -> None:
    """Restore MACHINE's (id or name) kept home folder into its owner's storage."""
    from daaas.portal.audit.service import operator
    from daaas.portal.db import utcnow
    from daaas.portal.machines.homes import restore_home

    settings = load_settings()
    with unit_of_work(_factory(settings)) as db:
        home = restore_home(db, settings, machine, operator(), utcnow())
        click.echo(f"restored the home folder of {home.machine_id} into the storage of "
                   f"{home.user.username} as {home.restored_to}")


def _configure_logging(settings: Settings) -> None:
    from daaas.portal.logs import configure

    configure(settings)


def _create_app(factory: Any, override: dict[str, Any]) -> Any:
    return factory(override)


@contextmanager
def _background_services(rt: Any) -> Iterator[None]:
    """The desktop proxy and the reconciler thread, when the settings ask for them."""
    from daaas.portal.access.proxy import start_proxy
    from daaas.portal.machines.worker import WorkerThread

    settings = rt.settings
    proxy = start_proxy(settings, settings.effective_database_url) \
        if settings.start_websockify else None
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
@_password_option
def users_add(username: str, display_name: str, email: str, admin: bool,
              groups: tuple[str, ...], instruments: tuple[str, ...], password: str) -> None:
    """Create a local account with the next free POSIX uid."""
    settings = _settings()
    with unit_of_work(_factory(settings)) as session:
        user = auth_service.create_user(session, settings, username, password,
                                        display_name=display_name, email=email,
                                        groups=list(groups), instruments=list(instruments),
                                        is_admin=admin)
        _audited(session, "user.create", user.username, "administrator" if admin else "")
        click.echo(f"Created {user.username} (uid {user.uid}, gid {user.gid}).")


@users.command("list")
def users_list() -> None:
    """List accounts."""
    with unit_of_work(_factory(_settings())) as session:
        for user in session.scalars(select(User).order_by(User.username)):
            flags = (" admin" if user.is_admin else "") + ("" if user.is_active else " disabled")
            click.echo(f"{user.username}\tuid={user.uid}\tgroups={','.join(user.groups)}"
                       f"\tinstruments={','.join(user.instruments)}{flags}")


@users.command("set-password")
@click.argument("username")
@_password_option
def users_set_password(username: str, password: str) -> None:
    """Replace a user's password."""
    with unit_of_work(_factory(_settings())) as session:
        _require_user(session, username)
        auth_service.set_password(session, username, password)
        _audited(session, "user.set_password", username)
    click.echo(f"Password of {username} changed.")


@users.command("disable")
@click.argument("username")
def users_disable(username: str) -> None:
    """Disable an account: it can no longer sign in, and every browser session it has ends."""
    with unit_of_work(_factory(_settings())) as session:
        _require_user(session, username)
        auth_service.set_active(session, username, False)
        _audited(session, "user.disable", username)
    click.echo(f"{username} is disabled and signed out everywhere.")


@users.command("enable")
@click.argument("username")
def users_enable(username: str) -> None:
    """Let a disabled account sign in again."""
    with unit_of_work(_factory(_settings())) as session:
        _require_user(session, username)
        auth_service.set_active(session, username, True)
        _audited(session, "user.enable", username)
    click.echo(f"{username} may sign in again.")


@main.group()
def tokens() -> None:
    """Personal API tokens."""


@tokens.command("create")
@click.argument("username")
@click.option("--name", default="cli", help="What the token is for.")
@click.option("--days", type=int, help="Lifetime in days (default from configuration, at most "
              "api_token_max_lifetime_days).")
def tokens_create(username: str, name: str, days: int | None) -> None:
    """Create an API token for USERNAME and print it (shown only once)."""
    settings = _settings()
    with unit_of_work(_factory(settings)) as session:
        user = _require_user(session, username)
        made = api_tokens.new_token(session, settings, user, name, days, actor=operator())
    with unit_of_work(_factory(settings)) as session:  # the token's first GET reads them
        experiments_service.first_look(session, EXPERIMENT_BACKENDS.build(settings), username)
    click.echo(made.secret)


@tokens.command("list")
@click.option("--user", "username", help="Only this user's tokens.")
def tokens_list(username: str | None) -> None:
    """List API tokens: id, user, name, prefix, created, last used, expires (never the
    secret)."""
    with unit_of_work(_factory(_settings())) as session:
        if username:
            user = _require_user(session, username)
            rows = [(token, user.username) for token in api_tokens.tokens_of(session, user)]
        else:
            rows = api_tokens.all_tokens(session)
        click.echo("id\tuser\tname\tprefix\tcreated\tlast used\texpires")
        for token, owner in rows:
            used = _minute(token.last_used_at) if token.last_used_at else "never"
            expired = " (expired)" if api_tokens.is_expired(token) else ""
            click.echo(f"{token.id}\t{owner}\t{token.name}\t{token.prefix}…\t"
                       f"{_minute(token.created_at)}\t{used}\t"
                       f"{_minute(token.expires_at)}{expired}")


@tokens.command("revoke")
@click.argument("token_id", type=click.IntRange(1, api_tokens.MAX_TOKEN_ID))
def tokens_revoke(token_id: int) -> None:
    """Revoke the API token TOKEN_ID (see `daaas tokens list`): it stops working at once."""
    with unit_of_work(_factory(_settings())) as session:
        token = api_tokens.revoke_token(session, token_id, None)
        click.echo(f"Revoked token {token_id} ({token.name}) of {token.user.username}.")


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command("prune")
def audit_prune() -> None:
    """Delete audit events older than audit_retention_days (run it daily, e.g. from cron)."""
    from daaas.portal.audit.service import prune

    settings = _settings()
    with unit_of_work(_factory(settings)) as session:
        removed = prune(session, settings.audit_retention_days)
    kept = (f"older than {settings.audit_retention_days} days"
            if settings.audit_retention_days else "none: audit_retention_days is 0")
    click.echo(f"Deleted {removed} audit event(s) ({kept}).")


def _audited(session: Session, action: str, username: str, detail: str = "") -> None:
    record(session, action, actor=operator(), target=f"user {username}", detail=detail,
           admin=True)


def _minute(when: datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def _require_user(session: Session, username: str) -> User:
    """Return the local account ``username``; raises NotFound saying how to find the names."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"There is no user called '{username}'. See `daaas users list`, or "
                       f"create the account with `daaas users add {username}`.")
    return user


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


def _attach_storage() -> None:
    from daaas.portal.storage.cli import storage_group

    main.add_command(storage_group)


_attach_storage()
