"""The web surface as an attacker tries it: sessions that end (a captured cookie is useless
after sign-out, a password change or disabling), idle and absolute session lifetimes, Secure
cookies and HSTS on https, trusted proxies, security headers (a CSP whose nonces only the
templates' own inline elements carry), redirects after sign-in that never leave the portal,
sign-in throttling per (account, address) with backoff and per address across accounts, and
experiments outsiders cannot tell from missing ones."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask, render_template_string
from flask.testing import FlaskClient
from sqlalchemy import select

from daaas.portal import create_app
from daaas.portal.auth.models import BrowserSession, SignInAttempt, User
from daaas.portal.cli import main
from daaas.portal.db import unit_of_work, utcnow
from tests.support.web import bearer, csrf_from, sign_in

COOKIE = "daaas_session"


def _factory(app: Flask) -> Any:
    return app.extensions["daaas"].session_factory


def _cookie(client: FlaskClient) -> str:
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None, "no session cookie"
    return cookie.value


def _replay(app: Flask, cookie: str) -> FlaskClient:
    """A second browser that only has a copy of ``cookie`` (as a thief would)."""
    thief = app.test_client()
    thief.set_cookie(COOKIE, cookie)
    return thief


def _signed_in(app: Flask, username: str = "scientist",
               password: str = "scientist-demo") -> FlaskClient:
    client = app.test_client()
    assert sign_in(client, username, password).status_code == 302
    return client


def _cli(settings_override: dict[str, Any], *args: str, stdin: str | None = None) -> Any:
    env = {"DAAAS_DATABASE_URL": settings_override["database_url"],
           "DAAAS_VAR_DIR": settings_override["var_dir"]}
    return CliRunner().invoke(main, list(args), env=env, input=stdin)


# --- sessions that end -----------------------------------------------------------------------

def test_cookie_captured_before_sign_out_is_refused_after_it(app: Flask) -> None:
    client = _signed_in(app)
    captured = _cookie(client)
    assert _replay(app, captured).get("/api/v1/me").status_code == 200
    client.post("/sign-out", data={"csrf_token": csrf_from(client, "/analysis")})
    thief = _replay(app, captured)
    assert thief.get("/api/v1/me").status_code == 401
    page = thief.get("/analysis")
    assert page.status_code == 302 and page.headers["Location"].startswith("/sign-in")


def test_signing_out_one_browser_leaves_the_others_signed_in(app: Flask) -> None:
    laptop, desktop = _signed_in(app), _signed_in(app)
    laptop.post("/sign-out", data={"csrf_token": csrf_from(laptop, "/analysis")})
    assert laptop.get("/api/v1/me").status_code == 401
    assert desktop.get("/api/v1/me").status_code == 200


def test_cookie_carries_no_part_of_the_password_hash(app: Flask) -> None:
    client = _signed_in(app)
    raw = _cookie(client)
    content = app.session_interface.get_signing_serializer(app).loads(raw)  # type: ignore[attr-defined]
    assert set(content) == {"sid", "csrf", "_permanent"}
    with _factory(app)() as db:
        stored = db.scalar(select(User.password_hash).where(User.username == "scientist"))
        records = list(db.scalars(select(BrowserSession)))
    assert stored
    digest = stored.rsplit("$", 1)[-1]
    for start in range(0, len(digest) - 8):
        assert digest[start:start + 8] not in raw and digest[start:start + 8] not in str(content)
    # The database keeps only a hash of the session id.
    assert len(records) == 1 and records[0].id_hash != content["sid"]
    assert content["sid"] not in records[0].id_hash


def test_set_password_ends_every_session_of_the_user(app: Flask,
                                                     settings_override: dict[str, Any]) -> None:
    laptop, desktop = _signed_in(app), _signed_in(app)
    other = _signed_in(app, "neutron", "neutron-demo")
    result = _cli(settings_override, "users", "set-password", "scientist", "--password", "-",
                  stdin="a-brand-new-password\n")
    assert result.exit_code == 0, result.output
    assert laptop.get("/api/v1/me").status_code == 401
    assert desktop.get("/api/v1/me").status_code == 401
    assert other.get("/api/v1/me").status_code == 200
    assert sign_in(app.test_client(), "scientist", "a-brand-new-password").status_code == 302


def test_disabling_ends_sessions_and_refuses_sign_in_until_enabled(
        app: Flask, settings_override: dict[str, Any]) -> None:
    client = _signed_in(app)
    captured = _cookie(client)
    result = _cli(settings_override, "users", "disable", "scientist")
    assert result.exit_code == 0 and "disabled" in result.output
    assert client.get("/api/v1/me").status_code == 401
    assert _replay(app, captured).get("/api/v1/me").status_code == 401
    assert sign_in(app.test_client(), "scientist", "scientist-demo").status_code == 401
    assert "disabled" in _cli(settings_override, "users", "list").output
    assert _cli(settings_override, "users", "enable", "scientist").exit_code == 0
    # Enabling does not bring the old session back; signing in again works.
    assert _replay(app, captured).get("/api/v1/me").status_code == 401
    assert _signed_in(app).get("/api/v1/me").status_code == 200


def _age_sessions(app: Flask, **delta: timedelta) -> None:
    with unit_of_work(_factory(app)) as db:
        for record in db.scalars(select(BrowserSession)):
            for column, by in delta.items():
                setattr(record, column, getattr(record, column) - by)


def test_idle_session_ends(settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override, "session_idle_minutes": 5})
    client = _signed_in(app)
    _age_sessions(app, last_seen_at=timedelta(minutes=4))
    assert client.get("/api/v1/me").status_code == 200  # used within the idle time: renewed
    with _factory(app)() as db:
        seen = db.scalar(select(BrowserSession.last_seen_at))
    assert seen is not None and utcnow() - seen < timedelta(minutes=1)
    _age_sessions(app, last_seen_at=timedelta(minutes=6))
    assert client.get("/api/v1/me").status_code == 401
    assert client.get("/analysis").status_code == 302


def test_absolute_lifetime_ends_a_busy_session(settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override, "session_lifetime_minutes": 30})
    client = _signed_in(app)
    _age_sessions(app, created_at=timedelta(minutes=29))
    assert client.get("/api/v1/me").status_code == 200
    _age_sessions(app, created_at=timedelta(minutes=2))
    assert client.get("/api/v1/me").status_code == 401


def test_https_public_url_makes_cookies_secure_and_sends_hsts(
        settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override, "public_url": "https://analysis.example.org"})
    client = app.test_client()
    base = "https://analysis.example.org"
    form = client.get("/sign-in", base_url=base).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token
    response = client.post("/sign-in", base_url=base,
                           data={"username": "scientist", "password": "scientist-demo",
                                 "csrf_token": token.group(1)})
    assert response.status_code == 302
    cookie = response.headers["Set-Cookie"]
    assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"


def test_plain_http_has_no_hsts(client: FlaskClient) -> None:
    response = client.get("/sign-in")
    assert "Strict-Transport-Security" not in response.headers


@pytest.mark.parametrize("path", ["/static/portal.css", "/dav/", "/api/v1/me", "/no-such-page"])
def test_https_headers_on_every_kind_of_answer(settings_override: dict[str, Any],
                                               path: str) -> None:
    """HSTS, X-Frame-Options, frame-ancestors and Referrer-Policy also on answers the pages
    do not make: static files, WebDAV, the API's errors."""
    app = create_app({**settings_override, "public_url": "https://analysis.example.org"})
    response = app.test_client().get(path, base_url="https://analysis.example.org")
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_plain_http_cookie_is_not_secure_so_sign_in_works(client: FlaskClient) -> None:
    """Without https (the embedded default on localhost) the cookie must not be Secure, or
    browsers would drop it and nobody could sign in."""
    response = sign_in(client, "scientist", "scientist-demo")
    assert response.status_code == 302
    assert "Secure" not in response.headers["Set-Cookie"]
    assert client.get("/api/v1/me").status_code == 200


# --- trusted proxies ------------------------------------------------------------------------

def _addresses(app: Flask) -> list[str]:
    with _factory(app)() as db:
        return list(db.scalars(select(SignInAttempt.remote_addr).order_by(SignInAttempt.id)))


def test_trusted_proxy_gives_the_client_address(settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override, "trusted_proxies": 1})
    client = app.test_client()
    token = csrf_from(client)
    client.post("/sign-in", data={"username": "scientist", "password": "wrong-password",
                                  "csrf_token": token},
                headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.9",
                         "X-Forwarded-Proto": "https"})
    assert _addresses(app) == ["203.0.113.9"]  # the one the (one) trusted proxy saw


FORWARDED = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https",
             "X-Forwarded-Host": "analysis.example.org"}


def _dav_url(client: FlaskClient) -> str:
    page = client.get("/my-data/", headers=FORWARDED).get_data(as_text=True)
    found = re.search(r'<code id="dav-url">([^<]+)</code>', page)
    assert found, page[:500]
    return found.group(1)


def test_trusted_proxy_gives_the_scheme_and_host(settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override, "trusted_proxies": 1})
    assert _dav_url(_signed_in(app)) == "https://analysis.example.org/dav/"
    untrusted = create_app(settings_override)
    assert _dav_url(_signed_in(untrusted)) == "http://localhost/dav/"


def test_without_trusted_proxies_forwarded_headers_are_ignored(client: FlaskClient,
                                                               app: Flask) -> None:
    token = csrf_from(client)
    client.post("/sign-in", data={"username": "scientist", "password": "wrong-password",
                                  "csrf_token": token},
                headers={"X-Forwarded-For": "203.0.113.9"})
    assert _addresses(app) == ["127.0.0.1"]


# --- security headers -----------------------------------------------------------------------

def _csp(response: Any) -> dict[str, str]:
    policy = response.headers["Content-Security-Policy"]
    return {part.split()[0]: part for part in (p.strip() for p in policy.split(";")) if part}


@pytest.mark.parametrize("path", ["/sign-in", "/analysis", "/api/v1/me", "/static/portal.css",
                                  "/no-such-page", "/dav/"])
def test_every_response_has_the_security_headers(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "unsafe-inline" not in response.headers["Content-Security-Policy"]


def test_csp_allows_the_desktop_proxy_websocket(settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override,
                      "websockify_url": "wss://desktops.example.org/websockify"})
    policy = _csp(app.test_client().get("/sign-in"))
    assert policy["connect-src"] == "connect-src 'self' wss://desktops.example.org"
    assert policy["script-src"].startswith("script-src 'self'")
    assert policy["img-src"] == "img-src 'self' data: blob:"  # noVNC's cursor
    default = _csp(create_app(settings_override).test_client().get("/sign-in"))
    # Without websockify_url: the proxy's port on the host the browser asked for.
    assert default["connect-src"] == "connect-src 'self' ws://localhost:6080"


def test_forms_lead_only_to_the_portal_unless_an_origin_is_added(app: Flask) -> None:
    from daaas.portal.security import FORM_TARGETS_KEY

    assert _csp(app.test_client().get("/sign-in"))["form-action"] == "form-action 'self'"
    app.config[FORM_TARGETS_KEY] = ["https://idp.example.org/realms/x/protocol/openid-connect"]
    assert _csp(app.test_client().get("/sign-in"))["form-action"] == \
        "form-action 'self' https://idp.example.org"


def test_only_the_templates_own_inline_scripts_get_the_nonce(app: Flask) -> None:
    with app.test_request_context("/"):
        html = render_template_string(
            "<script>ok()</script><style>p{}</style><p>{{ typed }}</p>",
            typed='<script>evil()</script><style nonce="x">')
        from daaas.portal.security import csp_nonce
        nonce = csp_nonce()
    assert f'<script nonce="{nonce}">ok()</script>' in html
    assert f'<style nonce="{nonce}">p{{}}</style>' in html
    assert "&lt;script&gt;evil()" in html and html.count(nonce) == 2


def test_machine_page_runs_no_inline_script_and_its_nonce_is_fresh(
        settings_override: dict[str, Any]) -> None:
    """The machine page's scripts are files (its ready wait is a long poll in
    machine-page.js): an injected inline script would not run; the CSP nonce differs per
    response."""
    app = create_app({**settings_override, "provider": "memory"})
    client = _signed_in(app)
    launched = client.post("/api/v1/machines", json={"environment": "ccp4"},
                           headers={"X-CSRF-Token": csrf_from(client, "/analysis")})
    assert launched.status_code in (201, 202), launched.get_data(as_text=True)
    page = client.get(f"/machines/{launched.get_json()['id']}")
    script_src = _csp(page)["script-src"]
    assert re.search(r"'nonce-([^']+)'", script_src) and "'unsafe-inline'" not in script_src
    html = page.get_data(as_text=True)
    assert re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html) == []
    assert "machine-page.js" in html
    assert client.get(f"/machines/{launched.get_json()['id']}").headers[
        "Content-Security-Policy"] != page.headers["Content-Security-Policy"]  # fresh per response


# --- redirects after sign-in ----------------------------------------------------------------

TRICKY_NEXT = [
    "//evil.example/x", "///evil.example", "/\\evil.example", "\\\\evil.example",
    "/%09/evil.example/phish", "/\t/evil.example", "/%0a/evil.example", "/%0d%0aSet-Cookie:x=1",
    "/\n/evil.example", "/ /evil.example", " /analysis", "https:evil.example",
    "https://evil.example/", "http:/evil.example", "javascript:alert(1)", "evil.example",
    "/%2F/evil.example", "/%5Cevil.example", "/\u3000/evil.example", "/\x00", "/a\x7fb",
    "data:text/html,<script>alert(1)</script>", "//", "/%2f%2fevil.example",
]


@pytest.mark.parametrize("target", TRICKY_NEXT)
def test_sign_in_never_redirects_off_the_portal(client: FlaskClient, target: str) -> None:
    token = csrf_from(client)
    response = client.post("/sign-in", data={"username": "scientist",
                                             "password": "scientist-demo",
                                             "csrf_token": token, "next": target})
    assert response.status_code == 302
    assert response.headers["Location"] == "/analysis"
    again = client.get("/sign-in", query_string={"next": target})  # signed in: goes on
    assert again.status_code == 302 and again.headers["Location"] == "/analysis"


@pytest.mark.parametrize("raw", ["next=/%09/evil.example/phish", "next=/%0a/x", "next=/%0d/x",
                                 "next=%0d%0aLocation:%20//evil", "next=/ok%0a"])
def test_control_characters_in_next_in_the_query_string(client: FlaskClient, raw: str) -> None:
    form = client.get(f"/sign-in?{raw}")
    assert form.status_code == 200
    token = csrf_from(client)
    response = client.post(f"/sign-in?{raw}", data={"username": "scientist",
                                                    "password": "scientist-demo",
                                                    "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/analysis"


def test_a_path_on_the_portal_is_kept(client: FlaskClient) -> None:
    token = csrf_from(client)
    response = client.post("/sign-in", data={"username": "scientist",
                                             "password": "scientist-demo", "csrf_token": token,
                                             "next": "/experiments?tab=current#top"})
    assert response.headers["Location"] == "/experiments?tab=current#top"


# --- sign-in throttling ---------------------------------------------------------------------

@pytest.fixture
def proxied(settings_override: dict[str, Any]) -> Flask:
    """A portal behind one trusted proxy, so tests can sign in from several addresses."""
    return create_app({**settings_override, "trusted_proxies": 1})


def _attempt(app: Flask, username: str, password: str, address: str) -> Any:
    client = app.test_client()
    token = csrf_from(client)
    return client.post("/sign-in", data={"username": username, "password": password,
                                         "csrf_token": token},
                       headers={"X-Forwarded-For": address})


GUESSER, OWNER, OFFICE = "203.0.113.66", "198.51.100.10", "192.0.2.44"


def test_guessing_from_one_address_does_not_lock_out_the_owner(proxied: Flask) -> None:
    for _ in range(5):
        assert _attempt(proxied, "scientist", "guess-guess", GUESSER).status_code == 401
    held = _attempt(proxied, "scientist", "scientist-demo", GUESSER)
    assert held.status_code == 429  # even the right password waits at the guesser's address
    assert "Wait 30 seconds" in held.get_data(as_text=True)
    assert 28 <= int(held.headers["Retry-After"]) <= 30
    assert _attempt(proxied, "scientist", "scientist-demo", OWNER).status_code == 302
    # ... and the guesser's address may still sign in to other accounts.
    assert _attempt(proxied, "neutron", "neutron-demo", GUESSER).status_code == 302


def _age_attempts(app: Flask, by: timedelta) -> None:
    with unit_of_work(_factory(app)) as db:
        for attempt in db.scalars(select(SignInAttempt)):
            attempt.at -= by


def test_backoff_doubles_with_each_further_failure(proxied: Flask) -> None:
    for _ in range(5):
        _attempt(proxied, "scientist", "guess-guess", GUESSER)
    assert "Wait 30 seconds" in _attempt(proxied, "scientist", "x" * 10, GUESSER).get_data(
        as_text=True)
    _age_attempts(proxied, timedelta(seconds=31))
    assert _attempt(proxied, "scientist", "guess-guess", GUESSER).status_code == 401
    assert "Wait 60 seconds" in _attempt(proxied, "scientist", "x" * 10, GUESSER).get_data(
        as_text=True)
    _age_attempts(proxied, timedelta(seconds=61))
    assert _attempt(proxied, "scientist", "guess-guess", GUESSER).status_code == 401
    text = _attempt(proxied, "scientist", "scientist-demo", GUESSER).get_data(as_text=True)
    assert "Wait 2 minutes" in text  # 120 s
    _age_attempts(proxied, timedelta(seconds=121))
    assert _attempt(proxied, "scientist", "scientist-demo", GUESSER).status_code == 302


def test_success_clears_the_pairs_failures(proxied: Flask) -> None:
    for _ in range(4):
        _attempt(proxied, "scientist", "typo-typo", OWNER)
    assert _attempt(proxied, "scientist", "scientist-demo", OWNER).status_code == 302
    for _ in range(4):
        assert _attempt(proxied, "scientist", "typo-typo", OWNER).status_code == 401
    assert _attempt(proxied, "scientist", "scientist-demo", OWNER).status_code == 302


def test_password_spraying_spends_the_addresses_budget(settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override, "trusted_proxies": 1,
                      "login_address_max_failures": 6})
    for name in ("scientist", "neutron", "admin", "alice", "bob", "carol"):
        assert _attempt(app, name, "Summer2026!", GUESSER).status_code == 401
    refused = _attempt(app, "neutron", "neutron-demo", GUESSER)
    assert refused.status_code == 429
    assert "Too many failed sign-in attempts" in refused.get_data(as_text=True)
    assert _attempt(app, "neutron", "neutron-demo", OFFICE).status_code == 302
    _age_attempts(app, timedelta(seconds=3601))  # out of the window: forgotten
    assert _attempt(app, "neutron", "neutron-demo", GUESSER).status_code == 302


# --- experiments ----------------------------------------------------------------------------

def test_non_member_gets_the_same_404_as_for_a_missing_experiment(app: Flask,
                                                                  client: FlaskClient) -> None:
    mine = client.get("/api/v1/experiments", headers=bearer(app, "scientist")).get_json()
    mx = next(e for e in mine["experiments"] if e["visit_id"] == "MX31850-12")
    headers = bearer(app, "neutron")
    hidden = client.get(f"/api/v1/experiments/{mx['id']}", headers=headers)
    missing = client.get("/api/v1/experiments/987654321", headers=headers)
    assert hidden.status_code == missing.status_code == 404
    assert hidden.get_json() == missing.get_json()
    assert "MX31850" not in hidden.get_data(as_text=True)
    sign_in(client, "neutron", "neutron-demo")
    page = client.get(f"/experiments/{mx['id']}")
    assert page.status_code == 404 and "MX31850" not in page.get_data(as_text=True)


# --- config show ----------------------------------------------------------------------------

def test_config_show_masks_secrets_wherever_they_sit(tmp_path: Any) -> None:
    import json

    env = {"DAAAS_SECRET_KEY": "very-secret-value",
           "DAAAS_DATABASE_URL": "postgresql+psycopg://portal:pw-in-userinfo@db.example/daaas"
                                 "?sslmode=require&password=pw-in-query&sslpassword=pw-ssl",
           "DAAAS_ICAT_URL": "https://reader:pw-icat,|?/x@icat.example.org",
           "DAAAS_HPC_SLURMRESTD_URL": "https://slurm.example.org:6820/?token=pw-token",
           "DAAAS_CVMFS_HTTP_PROXY": "http://squid:pw-squid@squid1:3128|http://squid2:3128;DIRECT",
           "DAAAS_WEBSOCKIFY_URL": "wss://desk.example.org/websockify#access_token=pw-fragment",
           "DAAAS_KEYSTONE_GROUP_MAP": "keystone-admins=staff",
           "DAAAS_VAR_DIR": str(tmp_path)}
    result = CliRunner().invoke(main, ["config", "show"], env=env)
    assert result.exit_code == 0, result.output
    assert "pw-" not in result.output and "very-secret-value" not in result.output
    shown = json.loads(result.output)
    assert shown["secret_key"] == "***"
    assert shown["database_url"] == ("postgresql+psycopg://***@db.example/daaas"
                                     "?sslmode=require&password=***&sslpassword=***")
    assert shown["icat_url"] == "https://***@icat.example.org"
    assert shown["cvmfs_http_proxy"] == "http://***@squid1:3128|http://squid2:3128;DIRECT"
    assert shown["keystone_group_map"] == "keystone-admins=staff"  # not a secret: shown
    assert shown["var_dir"] == str(tmp_path)
