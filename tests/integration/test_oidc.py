"""OIDC sign-in against a real OpenID provider (the certified ``oidc-provider`` npm package,
tests/support/oidc_op, started per test on a free port): the authorization-code flow with
PKCE, ID tokens refused for a wrong audience, issuer, expiry or signature (the provider itself
re-signs its token for the test: tests/support/oidc_op/server.mjs /admin/tamper), key rotation
(one JWKS refetch), claims followed at each sign-in, accounts keyed by (issuer, subject),
sign-out at both ends, local break-glass accounts, and a client secret that never leaves the
server."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

from daaas.portal import create_app
from daaas.portal.auth.models import IdentityLink, OidcLogin, User
from daaas.portal.cli import main
from daaas.portal.db import unit_of_work
from tests.support.oidc import OpBrowser, OpenIdProvider, running_op
from tests.support.web import csrf_from, sign_in

PORTAL = "http://localhost"
COOKIE = "daaas_session"


@pytest.fixture
def op() -> Iterator[OpenIdProvider]:
    """The real OpenID provider, its client registered for the test client's portal URL."""
    with running_op(PORTAL) as provider:
        yield provider


def _app(settings_override: dict[str, Any], op: OpenIdProvider, **extra: Any) -> Flask:
    return create_app({**settings_override, **op.portal_settings(PORTAL), **extra})


@pytest.fixture
def oidc_app(settings_override: dict[str, Any], op: OpenIdProvider) -> Iterator[Flask]:
    """A portal signing in at the test provider (on the demo database)."""
    application = _app(settings_override, op)
    yield application
    application.extensions["daaas"].engine.dispose()


class Flow:
    """One browser: the portal's test client and a user agent for the provider's pages,
    with everything the portal answered along the way (to look for leaked secrets)."""

    def __init__(self, app: Flask, op: OpenIdProvider) -> None:
        self.client: FlaskClient = app.test_client()
        self.op = OpBrowser(op.issuer)
        self.answers: list[TestResponse] = []

    def start(self) -> str:
        """Press the sign-in button; return the provider URL the portal sends us to."""
        token = csrf_from(self.client, "/sign-in")
        answer = self.client.post("/sign-in/oidc", data={"csrf_token": token, "next": ""})
        self.answers.append(answer)
        assert answer.status_code == 302, answer.get_data(as_text=True)
        return answer.headers["Location"]

    def callback(self, url: str) -> TestResponse:
        """Give the portal the provider's redirect back (as the browser would)."""
        assert url.startswith(f"{PORTAL}/sign-in/oidc/callback?"), url
        answer = self.client.get(url[len(PORTAL):])
        self.answers.append(answer)
        return answer

    def sign_in(self, login: str, *, expect_form: bool = True) -> TestResponse:
        """The whole sign-in as ``login``; returns the portal's answer to the callback."""
        return self.callback(self.op.sign_in(self.start(), login, expect_form=expect_form))

    def me(self) -> TestResponse:
        return self.client.get("/api/v1/me")


def _user(app: Flask, username: str) -> User | None:
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        user = db.scalar(select(User).where(User.username == username))
        if user is not None:
            db.expunge(user)
        return user


# --- the flow ---------------------------------------------------------------------------------

def test_sign_in_through_the_provider_lands_signed_in(oidc_app: Flask,
                                                      op: OpenIdProvider) -> None:
    flow = Flow(oidc_app, op)
    page = flow.client.get("/sign-in").get_data(as_text=True)
    assert "Sign in with Test OP" in page and 'id="password-sign-in"' in page
    authorize = flow.start()
    parts = urlsplit(authorize)
    query = parse_qs(parts.query)
    assert f"{parts.scheme}://{parts.netloc}" == op.issuer and parts.path == "/auth"
    assert query["response_type"] == ["code"] and query["client_id"] == [op.client_id]
    assert query["code_challenge_method"] == ["S256"] and len(query["code_challenge"][0]) >= 43
    assert query["redirect_uri"] == [f"{PORTAL}/sign-in/oidc/callback"]
    assert query["nonce"][0] and query["state"][0]
    assert set(query["scope"][0].split()) == {"openid", "profile", "email", "groups", "daaas"}
    assert "code_verifier" not in query and "client_secret" not in query

    answer = flow.callback(flow.op.sign_in(authorize, "alice"))
    assert answer.status_code == 302 and answer.headers["Location"] == "/analysis"
    me = flow.me()
    assert me.status_code == 200, me.get_data(as_text=True)
    body = me.get_json()
    assert body["username"] == "alice" and body["display_name"] == "Alice Adams"
    assert body["email"] == "alice@example.org"
    assert body["groups"] == ["mx", "scientists"] and body["instruments"] == ["MX1"]
    assert body["is_admin"] is False
    assert flow.client.get("/analysis").status_code == 200
    with unit_of_work(oidc_app.extensions["daaas"].session_factory) as db:
        link = db.scalar(select(IdentityLink).where(IdentityLink.subject == "alice"))
        assert link is not None and link.issuer == op.issuer
        assert link.user.username == "alice" and link.user.identity_source == "oidc"
        assert link.user.password_hash is None
        assert db.scalar(select(OidcLogin)) is None, "the login row is used once"


def test_the_answer_is_used_once_and_only_by_the_browser_that_asked(
        oidc_app: Flask, op: OpenIdProvider) -> None:
    flow = Flow(oidc_app, op)
    back = flow.op.sign_in(flow.start(), "alice")
    other = Flow(oidc_app, op)
    csrf_from(other.client, "/sign-in")
    stolen = other.callback(back)  # another browser with the same answer
    assert stolen.status_code == 401 and other.me().status_code == 401
    assert flow.callback(back).status_code == 302 and flow.me().status_code == 200
    flow.client.post("/sign-out", data={"csrf_token": csrf_from(flow.client, "/analysis")})
    replay = flow.callback(back)  # the same answer a second time
    assert replay.status_code == 401 and flow.me().status_code == 401


@pytest.mark.parametrize("mode", ["audience", "expired", "signature", "issuer", "nonce",
                                  "foreign-key"])
def test_a_bad_id_token_is_refused(oidc_app: Flask, op: OpenIdProvider, mode: str) -> None:
    flow = Flow(oidc_app, op)
    authorize = flow.start()
    op.admin("tamper", {"mode": mode})
    answer = flow.callback(flow.op.sign_in(authorize, "alice"))
    assert answer.status_code == 401, answer.get_data(as_text=True)
    assert "could not be verified" in answer.get_data(as_text=True)
    assert flow.me().status_code == 401
    assert _user(oidc_app, "alice") is None, "no account from a refused token"
    # the provider itself is fine: the next sign-in, untampered, works
    assert Flow(oidc_app, op).sign_in("alice").status_code == 302


def test_key_rotation_reads_the_jwks_again_once(oidc_app: Flask, op: OpenIdProvider) -> None:
    first = Flow(oidc_app, op)
    assert first.sign_in("alice").status_code == 302
    assert op.stats()["jwks"] == 1
    assert Flow(oidc_app, op).sign_in("bob").status_code == 302
    assert op.stats()["jwks"] == 1, "keys are cached"
    op.admin("rotate", {"drop_old": True})  # a new signing key; the old one is withdrawn
    rotated = Flow(oidc_app, op)
    assert rotated.sign_in("alice").status_code == 302 and rotated.me().status_code == 200
    assert op.stats()["jwks"] == 2, "an unknown kid reads the JWKS again, once"
    flow = Flow(oidc_app, op)
    authorize = flow.start()
    op.admin("tamper", {"mode": "foreign-key"})
    assert flow.callback(flow.op.sign_in(authorize, "bob")).status_code == 401
    assert op.stats()["jwks"] == 3, "a key the provider does not publish: one refetch, refused"


# --- claims and accounts ----------------------------------------------------------------------

def test_group_change_is_reflected_at_the_next_sign_in(oidc_app: Flask,
                                                       op: OpenIdProvider) -> None:
    flow = Flow(oidc_app, op)
    assert flow.sign_in("alice").status_code == 302
    assert flow.me().get_json()["groups"] == ["mx", "scientists"]
    op.admin("accounts/alice", {"groups": ["scientists", "xas", "daaas-admins"],
                                "instruments": ["XAS2"]})
    again = Flow(oidc_app, op)
    assert again.sign_in("alice").status_code == 302
    body = again.me().get_json()
    assert body["groups"] == ["daaas-admins", "scientists", "xas"]
    assert body["instruments"] == ["XAS2"] and body["is_admin"] is True
    op.admin("accounts/alice", {"groups": ["scientists"]})
    third = Flow(oidc_app, op)
    assert third.sign_in("alice").status_code == 302
    assert third.me().get_json()["groups"] == ["scientists"]
    assert third.me().get_json()["is_admin"] is False


def test_the_account_is_keyed_by_subject_not_user_name(oidc_app: Flask,
                                                       op: OpenIdProvider) -> None:
    flow = Flow(oidc_app, op)
    assert flow.sign_in("alice").status_code == 302
    before = flow.me().get_json()
    op.admin("accounts/alice", {"preferred_username": "alicia", "name": "Alicia Adams"})
    again = Flow(oidc_app, op)
    assert again.sign_in("alice").status_code == 302
    after = again.me().get_json()
    assert after["username"] == "alice", "the account keeps its (POSIX) name"
    assert after["uid"] == before["uid"] and after["display_name"] == "Alicia Adams"
    assert _user(oidc_app, "alicia") is None
    with unit_of_work(oidc_app.extensions["daaas"].session_factory) as db:
        assert len(db.scalars(select(IdentityLink)).all()) == 1
    # another subject asking for an existing (local) account's name cannot take it over
    op.admin("accounts/bob", {"preferred_username": "admin"})
    intruder = Flow(oidc_app, op)
    answer = intruder.sign_in("bob")
    assert answer.status_code == 401 and "already exists" in answer.get_data(as_text=True)
    assert intruder.me().status_code == 401
    admin = _user(oidc_app, "admin")
    assert admin is not None and admin.identity_source == "local"


def test_uid_is_allocated_once_per_subject_or_taken_from_a_claim(
        settings_override: dict[str, Any], op: OpenIdProvider) -> None:
    allocated = _app(settings_override, op)
    first = Flow(allocated, op)
    assert first.sign_in("bob").status_code == 302
    uid = first.me().get_json()["uid"]
    assert uid >= 20000 and first.me().get_json()["gid"] == uid
    second = Flow(allocated, op)
    assert second.sign_in("bob").status_code == 302
    assert second.me().get_json()["uid"] == uid, "the allocated uid stays with the subject"
    allocated.extensions["daaas"].engine.dispose()

    claimed = _app(settings_override, op, oidc_uid_claim="uid_number",
                   oidc_gid_claim="gid_number")
    flow = Flow(claimed, op)
    assert flow.sign_in("alice").status_code == 302
    assert (flow.me().get_json()["uid"], flow.me().get_json()["gid"]) == (31001, 31001)
    refused = Flow(claimed, op)
    answer = refused.sign_in("carol")  # carol has no uid_number claim
    assert answer.status_code == 401 and "POSIX id" in answer.get_data(as_text=True)
    claimed.extensions["daaas"].engine.dispose()


# --- signing out ------------------------------------------------------------------------------

def test_sign_out_ends_the_session_at_both_ends(oidc_app: Flask, op: OpenIdProvider) -> None:
    flow = Flow(oidc_app, op)
    assert flow.sign_in("alice").status_code == 302
    captured = flow.client.get_cookie(COOKIE)
    assert captured is not None
    # the provider's session is live: a second sign-in needs no form (single sign-on)
    sso = Flow(oidc_app, op)
    sso.op = flow.op
    assert sso.sign_in("alice", expect_form=False).status_code == 302

    answer = flow.client.post("/sign-out",
                              data={"csrf_token": csrf_from(flow.client, "/analysis")})
    assert answer.status_code == 302
    logout = urlsplit(answer.headers["Location"])
    assert f"{logout.scheme}://{logout.netloc}{logout.path}" == f"{op.issuer}/session/end"
    query = parse_qs(logout.query)
    assert query["post_logout_redirect_uri"] == [f"{PORTAL}/sign-in"]
    assert query["id_token_hint"][0].count(".") == 2
    thief = oidc_app.test_client()
    thief.set_cookie(COOKIE, captured.value)
    assert thief.get("/api/v1/me").status_code == 401, "the portal's session has ended"
    assert flow.me().status_code == 401
    assert sso.me().status_code == 200, "another browser's session is its own"

    back = flow.op.sign_out(answer.headers["Location"])
    assert back == f"{PORTAL}/sign-in"
    assert flow.op.authorize_shows_login(Flow(oidc_app, op).start()), \
        "the provider's session has ended: it asks to sign in again"


def test_a_local_session_signs_out_locally(oidc_app: Flask) -> None:
    client = oidc_app.test_client()
    assert sign_in(client, "admin", "admin-demo-pass").status_code == 302
    answer = client.post("/sign-out", data={"csrf_token": csrf_from(client, "/analysis")})
    assert answer.headers["Location"] == "/sign-in"


# --- local accounts, secrets, CSP --------------------------------------------------------------

def test_local_break_glass_accounts_keep_working(settings_override: dict[str, Any],
                                                 op: OpenIdProvider) -> None:
    both = _app(settings_override, op)
    client = both.test_client()
    assert sign_in(client, "admin", "admin-demo-pass").status_code == 302
    assert client.get("/api/v1/me").get_json()["is_admin"] is True
    both.extensions["daaas"].engine.dispose()

    button_only = _app(settings_override, op, oidc_local_sign_in=False)
    client = button_only.test_client()
    page = client.get("/sign-in").get_data(as_text=True)
    assert "Sign in with Test OP" in page and 'id="password-sign-in"' not in page
    answer = sign_in(client, "admin", "admin-demo-pass")
    assert answer.status_code == 401 and "Sign in with Test OP" in answer.get_data(as_text=True)
    assert client.get("/api/v1/me").status_code == 401
    button_only.extensions["daaas"].engine.dispose()


def test_the_client_secret_never_reaches_a_browser_a_url_or_a_log(
        oidc_app: Flask, op: OpenIdProvider, settings_override: dict[str, Any],
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    flow = Flow(oidc_app, op)
    assert flow.sign_in("alice").status_code == 302
    flow.answers.append(flow.client.get("/analysis"))
    flow.answers.append(flow.client.post(
        "/sign-out", data={"csrf_token": csrf_from(flow.client, "/analysis")}))
    urls = flow.op.pages_seen
    for answer in flow.answers:
        assert op.client_secret not in answer.get_data(as_text=True)
        assert op.client_secret not in str(answer.headers)
    assert not any(op.client_secret in url for url in urls)
    assert op.client_secret not in caplog.text
    assert "code_verifier" not in " ".join(urls)
    env = {"DAAAS_DATABASE_URL": settings_override["database_url"],
           "DAAAS_VAR_DIR": settings_override["var_dir"],
           "DAAAS_OIDC_CLIENT_SECRET": op.client_secret}
    shown = CliRunner().invoke(main, ["config", "show"], env=env)
    assert shown.exit_code == 0, shown.output
    assert op.client_secret not in shown.output and "oidc_client_secret" in shown.output
    assert repr(oidc_app.extensions["daaas"].identity).count(op.client_secret) == 0


def test_the_csp_lets_the_sign_in_forms_lead_to_the_provider(oidc_app: Flask,
                                                             op: OpenIdProvider) -> None:
    policy = oidc_app.test_client().get("/sign-in").headers["Content-Security-Policy"]
    form_action = next(part for part in policy.split("; ") if part.startswith("form-action"))
    assert form_action == f"form-action 'self' {op.issuer}"


def test_an_unreachable_provider_is_said_plainly(settings_override: dict[str, Any]) -> None:
    from tests.support.browser import free_port

    app = create_app({**settings_override, "identity_backend": "oidc",
                      "oidc_issuer": f"http://127.0.0.1:{free_port()}",
                      "oidc_client_id": "daaas", "oidc_client_secret": "s"})
    client = app.test_client()
    answer = client.post("/sign-in/oidc", data={"csrf_token": csrf_from(client, "/sign-in")})
    assert answer.status_code == 503
    assert "identity provider cannot be reached" in answer.get_data(as_text=True)
    app.extensions["daaas"].engine.dispose()
