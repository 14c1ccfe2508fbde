"""Local accounts: sign-in, sign-out, CSRF, rate limiting, cookies, the `daaas users` CLI;
an identity backend of the site's own, chosen by the setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from daaas.portal import create_app
from daaas.portal.auth.backends import (
    IDENTITY_BACKENDS,
    WRONG_CREDENTIALS,
    Identity,
    IdentityBackend,
)
from daaas.portal.auth.models import User
from daaas.portal.cli import main
from daaas.portal.config import ConfigError, Settings
from daaas.portal.errors import SignInFailed
from tests.support.web import csrf_from, sign_in


def test_demo_user_signs_in_and_reaches_analysis(client: FlaskClient) -> None:
    response = sign_in(client, "scientist", "scientist-demo")
    assert response.status_code == 302 and response.headers["Location"] == "/analysis"
    assert "Analysis environments" in client.get("/analysis").get_data(as_text=True)


def test_wrong_password_is_refused_without_saying_which(client: FlaskClient) -> None:
    for username in ("scientist", "nobody-here"):
        response = sign_in(client, username, "wrong-password")
        assert response.status_code == 401
        assert "Wrong user name or password" in response.get_data(as_text=True)
    assert client.get("/analysis").status_code == 302


def test_pages_redirect_to_sign_in_and_back(client: FlaskClient) -> None:
    response = client.get("/admin/catalogue")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/sign-in?next=/admin/catalogue")
    token = csrf_from(client, "/sign-in?next=/admin/catalogue")
    response = client.post("/sign-in", data={"username": "admin", "password": "admin-demo-pass",
                                             "csrf_token": token, "next": "/admin/catalogue"})
    assert response.headers["Location"] == "/admin/catalogue"


def test_next_never_leaves_the_portal(client: FlaskClient) -> None:
    token = csrf_from(client)
    response = client.post("/sign-in", data={"username": "scientist", "password": "scientist-demo",
                                             "csrf_token": token, "next": "//evil.example/x"})
    assert response.headers["Location"] == "/analysis"


def test_form_without_csrf_token_is_refused(client: FlaskClient) -> None:
    client.get("/sign-in")
    response = client.post("/sign-in", data={"username": "scientist",
                                             "password": "scientist-demo"})
    assert response.status_code == 403
    assert "Reload the page" in response.get_data(as_text=True)


def test_sign_out_needs_csrf_and_ends_session(client: FlaskClient) -> None:
    sign_in(client, "scientist", "scientist-demo")
    assert client.post("/sign-out").status_code == 403
    assert client.get("/analysis").status_code == 200
    client.post("/sign-out", data={"csrf_token": csrf_from(client, "/analysis")})
    assert client.get("/analysis").status_code == 302


def test_repeated_failures_are_rate_limited(client: FlaskClient) -> None:
    for _ in range(5):
        assert sign_in(client, "scientist", "not-the-password").status_code == 401
    response = sign_in(client, "scientist", "scientist-demo")
    assert response.status_code == 429
    assert "Too many failed sign-in attempts" in response.get_data(as_text=True)
    assert client.get("/analysis").status_code == 302


def test_session_cookie_is_httponly_and_samesite(client: FlaskClient) -> None:
    response = sign_in(client, "scientist", "scientist-demo")
    cookie = response.headers["Set-Cookie"]
    assert "daaas_session=" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_secure_cookie_when_configured(settings_override: dict[str, Any]) -> None:
    from daaas.portal import create_app

    app = create_app({**settings_override, "session_cookie_secure": True})
    response = sign_in(app.test_client(), "scientist", "scientist-demo")
    assert "Secure" in response.headers["Set-Cookie"]


def test_password_change_ends_existing_sessions(app: Flask, client: FlaskClient) -> None:
    from daaas.portal.auth.service import set_password
    from daaas.portal.db import unit_of_work

    sign_in(client, "scientist", "scientist-demo")
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        set_password(db, "scientist", "a-brand-new-password")
    assert client.get("/analysis").status_code == 302


def test_passwords_are_salted_hashes(app: Flask) -> None:
    with app.extensions["daaas"].session_factory() as db:
        hashes = [u.password_hash for u in db.scalars(select(User))]
    assert all(h and h.startswith("scrypt:") and "demo" not in h for h in hashes)
    assert len(set(hashes)) == len(hashes)


def _cli(settings_override: dict[str, Any], *args: str, stdin: str | None = None) -> Any:
    env = {"DAAAS_DATABASE_URL": settings_override["database_url"],
           "DAAAS_VAR_DIR": settings_override["var_dir"]}
    return CliRunner().invoke(main, list(args), env=env, input=stdin)


def test_users_cli_add_list_set_password(settings_override: dict[str, Any],
                                         client: FlaskClient) -> None:
    result = _cli(settings_override, "users", "add", "carol", "--name", "Carol Beam",
                  "--group", "diamond-users", "--instrument", "I03",
                  stdin="carol-password-1\ncarol-password-1\n")
    assert result.exit_code == 0, result.output
    assert "uid 20003" in result.output
    listing = _cli(settings_override, "users", "list").output
    assert "carol\tuid=20003\tgroups=diamond-users\tinstruments=I03" in listing
    assert sign_in(client, "carol", "carol-password-1").status_code == 302
    changed = _cli(settings_override, "users", "set-password", "carol",
                   stdin="carol-password-2\ncarol-password-2\n")
    assert changed.exit_code == 0, changed.output
    assert client.get("/analysis").status_code == 302  # the old sign-in ended
    assert sign_in(client, "carol", "carol-password-1").status_code == 401
    assert sign_in(client, "carol", "carol-password-2").status_code == 302


def test_users_cli_rejects_duplicates_and_bad_names(settings_override: dict[str, Any]) -> None:
    taken = _cli(settings_override, "users", "add", "scientist",
                 stdin="some-password-1\nsome-password-1\n")
    assert taken.exit_code == 1 and "already exists" in taken.output
    bad = _cli(settings_override, "users", "add", "Bad Name",
               stdin="some-password-1\nsome-password-1\n")
    assert bad.exit_code == 1 and "not a valid user name" in bad.output
    short = _cli(settings_override, "users", "add", "dave", stdin="short\nshort\n")
    assert short.exit_code == 1 and "at least 10 characters" in short.output


def test_db_upgrade_cli(tmp_path: Path) -> None:
    env = {"DAAAS_VAR_DIR": str(tmp_path / "var")}
    result = CliRunner().invoke(main, ["db", "upgrade"], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "var" / "daaas.sqlite").exists()


class DirectoryDouble(IdentityBackend):
    """A test double for a site's own identity backend: one person, a fixed password."""

    name = "directory-double"

    def __init__(self, admin_role: str) -> None:
        self.admin_role = admin_role

    @classmethod
    def from_settings(cls, settings: Settings) -> DirectoryDouble:
        return cls(settings.keystone_admin_role)

    def authenticate(self, db: Session, username: str, password: str) -> Identity:
        if (username, password) != ("dir-user", "directory-pass"):
            raise SignInFailed(WRONG_CREDENTIALS)
        return Identity(username=username, groups=("beamline", self.admin_role))


def test_registered_identity_backend_is_chosen_by_the_setting(
        settings_override: dict[str, Any]) -> None:
    with IDENTITY_BACKENDS.registered("directory", DirectoryDouble):
        app = create_app({**settings_override, "identity_backend": "directory",
                          "keystone_admin_role": "from-settings"})
    try:
        client = app.test_client()
        assert sign_in(client, "dir-user", "wrong-password-x").status_code == 401
        assert sign_in(client, "dir-user", "directory-pass").status_code == 302
        with app.extensions["daaas"].session_factory() as db:
            user = db.scalar(select(User).where(User.username == "dir-user"))
            assert user is not None and user.identity_source == "directory-double"
            assert user.groups == ["beamline", "from-settings"]
    finally:
        app.extensions["daaas"].engine.dispose()


def test_unknown_identity_backend_is_named_at_start(settings_override: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"'identity_backend'.*choose one of: keystone, local"):
        create_app({**settings_override, "identity_backend": "ldap"})
    with pytest.raises(ConfigError, match=r"'identity_backend'.*not a subclass"):
        create_app({**settings_override, "identity_backend": "daaas.portal.config:Settings"})
