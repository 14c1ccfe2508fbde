"""Personal API tokens as their owners manage them: named, with an expiry between 1 day and
the portal's maximum, at most ``api_tokens_per_user`` live ones, listed without the secret
(page, API, CLI), revoked (page, API, CLI) and then refused at once; a token cannot create
tokens, only a signed-in browser session can; a bad body is a 400, never a 201 or a 500."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from daaas.portal import create_app
from daaas.portal.auth.models import ApiToken
from daaas.portal.cli import main
from daaas.portal.db import unit_of_work, utcnow
from tests.support.web import assert_matches, bearer, csrf_from, sign_in


def _factory(app: Flask) -> Any:
    return app.extensions["daaas"].session_factory


def _browser(app: Flask, username: str = "scientist", password: str = "scientist-demo"
             ) -> tuple[FlaskClient, dict[str, str]]:
    """A signed-in browser and the CSRF header its scripts send."""
    client = app.test_client()
    assert sign_in(client, username, password).status_code == 302
    return client, {"X-CSRF-Token": csrf_from(client, "/account")}


def _create(client: FlaskClient, csrf: dict[str, str], **body: Any) -> Any:
    return client.post("/api/v1/tokens", json=body, headers=csrf)


def _cli(settings_override: dict[str, Any], *args: str) -> Any:
    env = {"DAAAS_DATABASE_URL": settings_override["database_url"],
           "DAAAS_VAR_DIR": settings_override["var_dir"]}
    return CliRunner().invoke(main, list(args), env=env)


# --- creating -------------------------------------------------------------------------------

def test_a_session_creates_a_named_token_with_the_default_expiry(app: Flask) -> None:
    client, csrf = _browser(app)
    response = _create(client, csrf, name="reduction script")
    assert response.status_code == 201, response.get_data(as_text=True)
    body = response.get_json()
    assert_matches(body, "Token")
    assert body["name"] == "reduction script" and body["token"].startswith(body["prefix"])
    from datetime import datetime
    expires = datetime.fromisoformat(body["expires_at"])
    assert timedelta(days=89, hours=23) < expires - utcnow() <= timedelta(days=90)
    me = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200 and me.get_json()["username"] == "scientist"
    with _factory(app)() as db:  # stored hashed: the secret is nowhere in the row
        row = db.scalar(select(ApiToken).where(ApiToken.id == body["id"]))
        assert row is not None and body["token"] not in (row.secret_hash, row.prefix, row.name)


def test_a_lifetime_within_the_maximum_is_kept_and_beyond_it_refused(
        settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override, "api_token_lifetime_days": 30,
                      "api_token_max_lifetime_days": 60})
    client, csrf = _browser(app)
    from datetime import datetime
    ok = _create(client, csrf, name="short", lifetime_days=7)
    assert ok.status_code == 201
    left = datetime.fromisoformat(ok.get_json()["expires_at"]) - utcnow()
    assert timedelta(days=6, hours=23) < left <= timedelta(days=7)
    default = _create(client, csrf, name="default")
    left = datetime.fromisoformat(default.get_json()["expires_at"]) - utcnow()
    assert timedelta(days=29, hours=23) < left <= timedelta(days=30)
    for days in (61, 3650):
        refused = _create(client, csrf, name="long", lifetime_days=days)
        assert refused.status_code == 400
        assert_matches(refused.get_json(), "Error")
        assert "from 1 to 60 days" in refused.get_json()["error"]["message"]
    for days in (0, -1, 3651, 10**30, "7", 7.5):
        refused = _create(client, csrf, name="bad", lifetime_days=days)
        assert refused.status_code == 400, days
        assert "lifetime_days" in refused.get_json()["error"]["message"], days


def test_a_token_cannot_create_tokens(app: Flask, client: FlaskClient) -> None:
    headers = bearer(app, "scientist")
    for body in ({"name": "more"}, None):
        response = client.post("/api/v1/tokens", json=body, headers=headers)
        assert response.status_code == 403
        assert_matches(response.get_json(), "Error")
        assert "API tokens cannot create API tokens" in response.get_json()["error"]["message"]
    # ... even with the session cookie beside it: the request is the token's.
    browser, csrf = _browser(app)
    both = browser.post("/api/v1/tokens", json={"name": "x"}, headers={**headers, **csrf})
    assert both.status_code == 403
    with _factory(app)() as db:
        assert [t.name for t in db.scalars(select(ApiToken))] == ["test"]


@pytest.mark.parametrize(("raw", "expected"), [
    (b"\x00", "The body is not JSON"), (b"not json", "The body is not JSON"),
    (b"[]", "must be a JSON object"), (b'{"name": "' + b"x" * 101 + b'"}', "name: string should"),
    (b'{"name": ""}', "name: string should have at least 1 character"),
    (b'{"name": "a\\u0000b"}', "control characters"),
    (b'{"name": "line\\nbreak"}', "control characters"),
    (b'{"name": 12}', "name: input should be a valid string"),
    (b'{"lifetime_days": 100000}', "lifetime_days: input should be less than or equal to 3650"),
])
def test_a_bad_body_is_400_with_a_message(app: Flask, raw: bytes, expected: str) -> None:
    client, csrf = _browser(app)
    response = client.post("/api/v1/tokens", data=raw,
                           headers={**csrf, "Content-Type": "application/json"})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert_matches(response.get_json(), "Error")
    assert expected in response.get_json()["error"]["message"]
    with _factory(app)() as db:
        assert db.scalar(select(ApiToken.id)) is None


def test_the_per_user_cap_counts_live_tokens_only(settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override, "api_tokens_per_user": 2})
    client, csrf = _browser(app)
    assert _create(client, csrf, name="one").status_code == 201
    assert _create(client, csrf, name="two").status_code == 201
    third = _create(client, csrf, name="three")
    assert third.status_code == 400
    assert "already have 2 API tokens" in third.get_json()["error"]["message"]
    other, other_csrf = _browser(app, "neutron", "neutron-demo")  # the cap is per user
    assert _create(other, other_csrf, name="theirs").status_code == 201
    with unit_of_work(_factory(app)) as db:  # an expired token no longer counts
        row = db.scalar(select(ApiToken).where(ApiToken.name == "one"))
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
    assert _create(client, csrf, name="three").status_code == 201


# --- listing and revoking through the API ---------------------------------------------------

def test_list_shows_name_dates_and_never_the_secret(app: Flask) -> None:
    client, csrf = _browser(app)
    secret = _create(client, csrf, name="laptop").get_json()["token"]
    _create(client, csrf, name="cluster")
    app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"})
    other, other_csrf = _browser(app, "neutron", "neutron-demo")
    _create(other, other_csrf, name="not yours")
    response = client.get("/api/v1/tokens")
    assert response.status_code == 200
    body = response.get_json()
    assert_matches(body, "TokenList")
    assert [t["name"] for t in body["tokens"]] == ["cluster", "laptop"]
    laptop = body["tokens"][1]
    assert laptop["last_used_at"] is not None and body["tokens"][0]["last_used_at"] is None
    assert not laptop["expired"] and secret.startswith(laptop["prefix"])
    assert secret not in response.get_data(as_text=True)
    # A token may list its owner's tokens (it only cannot make new ones).
    by_token = app.test_client().get("/api/v1/tokens",
                                     headers={"Authorization": f"Bearer {secret}"})
    assert [t["name"] for t in by_token.get_json()["tokens"]] == ["cluster", "laptop"]


def test_revoke_by_api_ends_the_token_at_once(app: Flask) -> None:
    client, csrf = _browser(app)
    made = _create(client, csrf, name="laptop").get_json()
    auth = {"Authorization": f"Bearer {made['token']}"}
    assert app.test_client().get("/api/v1/me", headers=auth).status_code == 200
    assert client.delete(f"/api/v1/tokens/{made['id']}").status_code == 403  # no CSRF token
    response = client.delete(f"/api/v1/tokens/{made['id']}", headers=csrf)
    assert response.status_code == 204 and response.get_data() == b""
    after = app.test_client().get("/api/v1/me", headers=auth)
    assert after.status_code == 401
    assert "unknown or has expired" in after.get_json()["error"]["message"]
    assert client.get("/api/v1/tokens").get_json()["tokens"] == []
    again = client.delete(f"/api/v1/tokens/{made['id']}", headers=csrf)
    assert again.status_code == 404
    assert_matches(again.get_json(), "Error")


def test_a_token_may_revoke_itself_but_not_someone_elses(app: Flask) -> None:
    client, csrf = _browser(app)
    theirs = _create(client, csrf, name="scientist's").get_json()
    neutron = bearer(app, "neutron")
    stranger = app.test_client().delete(f"/api/v1/tokens/{theirs['id']}", headers=neutron)
    missing = app.test_client().delete("/api/v1/tokens/2147483647", headers=neutron)
    assert stranger.status_code == missing.status_code == 404
    assert stranger.get_json() == missing.get_json()
    huge = app.test_client().delete("/api/v1/tokens/11371729328651038823324581888",
                                    headers=neutron)
    assert huge.status_code == 404
    own = {"Authorization": f"Bearer {theirs['token']}"}
    assert app.test_client().delete(f"/api/v1/tokens/{theirs['id']}",
                                    headers=own).status_code == 204
    assert app.test_client().get("/api/v1/me", headers=own).status_code == 401


def test_an_expired_token_is_401_and_listed_as_expired(app: Flask) -> None:
    client, csrf = _browser(app)
    made = _create(client, csrf, name="old").get_json()
    with unit_of_work(_factory(app)) as db:
        row = db.get(ApiToken, made["id"])
        assert row is not None
        row.expires_at = utcnow() - timedelta(minutes=1)
    response = app.test_client().get("/api/v1/me",
                                     headers={"Authorization": f"Bearer {made['token']}"})
    assert response.status_code == 401
    listed = client.get("/api/v1/tokens").get_json()["tokens"]
    assert [(t["name"], t["expired"]) for t in listed] == [("old", True)]


# --- the account page -----------------------------------------------------------------------

def test_account_page_creates_shows_once_lists_and_revokes(app: Flask) -> None:
    client, _ = _browser(app)
    assert 'href="/account"' in client.get("/analysis").get_data(as_text=True)
    page = client.get("/account").get_data(as_text=True)
    assert "You have no API tokens." in page
    created = client.post("/account/tokens", data={"name": "notebook", "days": "10",
                                                   "csrf_token": csrf_from(client, "/account")})
    assert created.status_code == 201
    html = created.get_data(as_text=True)
    secret = re.search(r'id="new-api-token-value">([^<]+)</code>', html)
    assert secret and 'data-copy="new-api-token-value"' in html
    me = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {secret[1]}"})
    assert me.get_json()["username"] == "scientist"
    listed = client.get("/account").get_data(as_text=True)
    assert "notebook" in listed and secret[1] not in listed  # shown that once only
    row = re.search(r'<tr data-token="(\d+)"><td class="name">notebook</td>', listed)
    assert row and "never" not in listed  # used once, by the call above
    revoked = client.post(f"/account/tokens/{row[1]}/revoke",
                          data={"csrf_token": csrf_from(client, "/account")})
    assert revoked.status_code == 302 and revoked.headers["Location"].endswith("#api-tokens")
    after = client.get("/account").get_data(as_text=True)
    assert "API token &#39;notebook&#39; revoked" in after and "You have no API tokens." in after
    assert app.test_client().get(
        "/api/v1/me", headers={"Authorization": f"Bearer {secret[1]}"}).status_code == 401


@pytest.mark.parametrize(("form", "expected"), [
    ({"name": "x" * 101}, "at most 100 characters"),
    ({"name": "ok", "days": "100000"}, "from 1 to 365 days"),
    ({"name": "ok", "days": "11371729328651038823324581888"}, "whole number of days"),
    ({"name": "ok", "days": "-3"}, "whole number of days"),
    ({"name": "tab\there"}, "control characters"),
])
def test_account_page_refuses_bad_input_with_the_reason(app: Flask, form: dict[str, str],
                                                        expected: str) -> None:
    client, _ = _browser(app)
    response = client.post("/account/tokens",
                           data={**form, "csrf_token": csrf_from(client, "/account")})
    assert response.status_code == 400
    assert expected in response.get_data(as_text=True)


def test_account_page_cannot_revoke_someone_elses_token(app: Flask) -> None:
    owner, csrf = _browser(app)
    made = _create(owner, csrf, name="mine").get_json()
    other, _ = _browser(app, "neutron", "neutron-demo")
    response = other.post(f"/account/tokens/{made['id']}/revoke",
                          data={"csrf_token": csrf_from(other, "/account")})
    assert response.status_code == 404
    assert app.test_client().get(
        "/api/v1/me", headers={"Authorization": f"Bearer {made['token']}"}).status_code == 200


def test_account_page_needs_sign_in(client: FlaskClient) -> None:
    response = client.get("/account")
    assert response.status_code == 302 and response.headers["Location"].startswith("/sign-in")


# --- the command line -----------------------------------------------------------------------

def test_cli_lists_and_revokes(app: Flask, settings_override: dict[str, Any]) -> None:
    client, csrf = _browser(app)
    mine = _create(client, csrf, name="laptop").get_json()
    created = _cli(settings_override, "tokens", "create", "neutron", "--name", "ci")
    assert created.exit_code == 0, created.output
    listing = _cli(settings_override, "tokens", "list")
    assert listing.exit_code == 0, listing.output
    lines = listing.output.splitlines()
    assert lines[0].split("\t") == ["id", "user", "name", "prefix", "created", "last used",
                                    "expires"]
    assert [line.split("\t")[1:3] for line in lines[1:]] == [["neutron", "ci"],
                                                            ["scientist", "laptop"]]
    assert mine["token"] not in listing.output and created.output.strip() not in listing.output
    only = _cli(settings_override, "tokens", "list", "--user", "scientist")
    assert [line.split("\t")[2] for line in only.output.splitlines()[1:]] == ["laptop"]
    revoked = _cli(settings_override, "tokens", "revoke", str(mine["id"]))
    assert revoked.exit_code == 0, revoked.output
    assert f"Revoked token {mine['id']} (laptop) of scientist" in revoked.output
    assert app.test_client().get(
        "/api/v1/me", headers={"Authorization": f"Bearer {mine['token']}"}).status_code == 401
    gone = _cli(settings_override, "tokens", "revoke", str(mine["id"]))
    assert gone.exit_code == 1 and "no such API token" in gone.output
    nobody = _cli(settings_override, "tokens", "list", "--user", "nobody")
    assert nobody.exit_code == 1 and "no user called 'nobody'" in nobody.output


def test_cli_create_is_held_to_the_maximum_lifetime(settings_override: dict[str, Any]) -> None:
    refused = _cli(settings_override, "tokens", "create", "neutron", "--days", "366")
    assert refused.exit_code == 1 and "from 1 to 365 days" in refused.output
    ok = _cli(settings_override, "tokens", "create", "neutron", "--days", "365")
    assert ok.exit_code == 0 and ok.output.strip().startswith("daaas_")
