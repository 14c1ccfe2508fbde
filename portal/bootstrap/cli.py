"""``daaas context ...``: show operators exactly what a machine would be told at boot."""

from __future__ import annotations

import base64
import gzip

import click
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from daaas.catalogue import Environment
from daaas.portal.analysis.service import load_site_catalogue
from daaas.portal.auth.models import User
from daaas.portal.bootstrap.userdata import PLACEHOLDER_MACHINE_ID, PLACEHOLDER_TOKEN, user_data
from daaas.portal.config import Settings, load_settings
from daaas.portal.db import make_engine, make_session_factory
from daaas.portal.demo import DEMO_USERS
from daaas.portal.migrate import is_current

DEFAULT_USER = DEMO_USERS[0].username


@click.group("context")
def context_group() -> None:
    """Inspect contextualisation: the cloud-init user-data machines get."""


@context_group.command("render")
@click.argument("environment")
@click.option("--user", "username", default=DEFAULT_USER, show_default=True,
              help="Whose session to render.")
def render(environment: str, username: str) -> None:
    """Print the user-data the portal would send for ENVIRONMENT and a user's session.

    The machine id and bootstrap token are placeholders; the rest is exact. Gzip-compressed
    user-data is printed decompressed (stderr says so). Exits 1 for an unknown environment or
    user, or user-data that cannot be rendered (the ``daaas`` group prints the typed errors,
    ConfigError and ContextualisationError, as one line).
    """
    settings = load_settings()
    env = _environment(settings, environment)
    user = _user(settings, username)
    if not (user.is_admin or env.visible_to(user.groups, user.instruments)):
        click.echo(f"note: {username} may not launch {environment}; the portal would refuse "
                   "it. Rendering anyway.", err=True)
    data = user_data(settings, user, PLACEHOLDER_MACHINE_ID, env, PLACEHOLDER_TOKEN)
    size = len(base64.b64encode(data))
    if data[:2] == b"\x1f\x8b":
        click.echo(f"note: sent gzip-compressed ({size} bytes after base64); shown unpacked.",
                   err=True)
        data = gzip.decompress(data)
    click.echo(data.decode("utf-8"), nl=False)


def _environment(settings: Settings, name: str) -> Environment:
    catalogue = load_site_catalogue(settings)
    env = catalogue.environments.get(name)
    if env is not None:
        return env
    if name in catalogue.invalid:
        problems = "; ".join(str(problem) for problem in catalogue.invalid[name])
        raise click.ClickException(f"The environment '{name}' is invalid: {problems}")
    known = ", ".join(sorted(catalogue.environments)) or "none"
    raise click.ClickException(f"There is no environment called '{name}' in "
                               f"{settings.catalogue_dir}. Known: {known}.")


def _user(settings: Settings, username: str) -> User:
    engine = make_engine(settings.effective_database_url)
    try:
        if not is_current(engine):
            raise click.ClickException("The database is not at the newest schema. Run "
                                       "`daaas db upgrade` first.")
        with make_session_factory(engine)() as db:
            user = db.scalar(select(User).where(User.username == username))
    except OperationalError as exc:
        where = engine.url.render_as_string(hide_password=True)
        raise click.ClickException(f"Cannot read the database at {where}: {exc.orig}. Check "
                                   "database_url, or run `daaas db upgrade`.") from None
    finally:
        engine.dispose()
    if user is None:
        raise click.ClickException(f"There is no user called '{username}'. Pick one from "
                                   "`daaas users list` with --user.")
    return user
