"""A real OpenID provider for the OIDC tests: the certified ``oidc-provider`` npm package
(tests/support/oidc_op: server.mjs, version pinned by package.json and package-lock.json),
run with Debian's Node on 127.0.0.1 on a free port.

``.ci/setup.sh`` installs it (``npm ci --prefix tests/support/oidc_op``). Without its
node_modules the OIDC tests skip saying so, except in CI (``CI`` set), where they fail.

:class:`OpBrowser` is a user agent for the provider's own pages (its development login form
and its sign-out confirmation) for tests that drive the portal with Flask's test client; the
Playwright test uses Chromium instead.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import select
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import pytest
import requests

OP_DIR = Path(__file__).parent / "oidc_op"
NODE = shutil.which("node") or "/usr/bin/node"
INSTALL = "npm ci --prefix tests/support/oidc_op"
START_SECONDS = 60


def require_op() -> None:
    """Skip (locally) or fail (in CI) when Node or the provider's node_modules is missing."""
    missing = None
    if not Path(NODE).exists():
        missing = "Node.js (/usr/bin/node) is not installed"
    elif not (OP_DIR / "node_modules" / "oidc-provider" / "package.json").exists():
        missing = f"the test OpenID provider is not installed: run `{INSTALL}`"
    if missing is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the OIDC tests, but {missing} (.ci/setup.sh does it).")
    pytest.skip(missing)


class OpenIdProvider:
    """One running ``server.mjs``: its issuer URL, its test client and its admin endpoints."""

    def __init__(self, process: subprocess.Popen[str], issuer: str) -> None:
        self.process = process
        self.issuer = issuer
        self.client_id = "daaas"
        self.client_secret = "op-secret-" + secrets.token_urlsafe(16)

    def admin(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """POST ``body`` to the admin endpoint ``path`` (``client``, ``rotate``,
        ``accounts/alice``, ``tamper``) and return its JSON answer."""
        answer = requests.post(f"{self.issuer}/admin/{path}", json=body or {}, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def stats(self) -> dict[str, int]:
        """How many JWKS and token requests the provider has answered."""
        answer = requests.get(f"{self.issuer}/admin/stats", timeout=10)
        answer.raise_for_status()
        stats: dict[str, int] = answer.json()
        return stats

    def register_client(self, portal_url: str) -> None:
        """Make the test client's redirect and post-logout URIs those of ``portal_url``."""
        self.admin("client", {"client_id": self.client_id, "client_secret": self.client_secret,
                              "redirect_uris": [f"{portal_url}/sign-in/oidc/callback"],
                              "post_logout_redirect_uris": [f"{portal_url}/sign-in"]})

    def portal_settings(self, portal_url: str) -> dict[str, Any]:
        """Settings for a portal signing in at this provider with its test client."""
        return {"identity_backend": "oidc", "oidc_issuer": self.issuer,
                "oidc_client_id": self.client_id, "oidc_client_secret": self.client_secret,
                "oidc_scopes": "openid profile email groups daaas",
                "oidc_provider_name": "Test OP", "oidc_instruments_claim": "instruments",
                "oidc_admin_group": "daaas-admins", "public_url": portal_url}


@contextmanager
def running_op(portal_url: str = "http://localhost") -> Iterator[OpenIdProvider]:
    """Start the provider on a free port with its client registered for ``portal_url``;
    stop it afterwards (printing its error output, which pytest shows for a failed test).
    Skips or fails as :func:`require_op` says."""
    require_op()
    with tempfile.TemporaryFile(mode="w+") as errors:  # a file never fills up as a pipe can
        process = subprocess.Popen([NODE, "server.mjs"], cwd=OP_DIR, stdout=subprocess.PIPE,
                                   stderr=errors, text=True, start_new_session=True,
                                   env={**os.environ, "OP_PORT": "0"})
        try:
            assert process.stdout is not None
            # Its one stdout line says where it listens; never wait for it without a limit.
            ready, _, _ = select.select([process.stdout], [], [], START_SECONDS)
            line = process.stdout.readline() if ready else ""
            if not line:
                errors.seek(0)
                raise AssertionError(f"the test OpenID provider did not start within "
                                     f"{START_SECONDS} s: {errors.read()}")
            provider = OpenIdProvider(process, json.loads(line)["issuer"])
            provider.register_client(portal_url)
            yield provider
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(10)
            errors.seek(0)
            print(errors.read()[-3000:])


class OpBrowser:
    """A user agent for the provider's pages, with its own cookies (the provider's session).

    :meth:`sign_in` follows an authorization URL through the login form to the redirect back
    to the portal; :meth:`sign_out` confirms the provider's sign-out page.
    """

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer
        self.http = requests.Session()
        self.pages_seen: list[str] = []

    def _follow(self, url: str) -> tuple[str, requests.Response | None]:
        """Follow redirects while they stay at the provider; return the URL that leaves it
        (and None), or the provider's page that stopped (its URL and response)."""
        for _ in range(10):
            if not url.startswith(self.issuer):
                return url, None
            answer = self.http.get(url, allow_redirects=False, timeout=10)
            self.pages_seen.append(url)
            if answer.status_code in (301, 302, 303, 307, 308):
                url = urljoin(url, answer.headers["Location"])
                continue
            return url, answer
        raise AssertionError(f"too many redirects at the provider from {url}")

    def sign_in(self, authorize_url: str, login: str, *, expect_form: bool = True) -> str:
        """Sign in as ``login`` (any password: development login) and return the portal
        URL the provider sends the browser back to. With ``expect_form`` false, the
        provider's session must sign in without showing its form (single sign-on)."""
        url, page = self._follow(authorize_url)
        if page is None:
            assert not expect_form, "the provider signed in without asking (a live session)"
            return url
        assert expect_form, f"the provider asked to sign in again: {page.text[:300]}"
        form = re.search(r'<form[^>]*action="([^"]+)"', page.text)
        assert form and 'name="login"' in page.text, f"no login form at {url}: {page.text[:300]}"
        answer = self.http.post(urljoin(url, unescape(form.group(1))), allow_redirects=False,
                                data={"prompt": "login", "login": login,
                                      "password": "any-password"}, timeout=10)
        assert answer.status_code in (302, 303), answer.text[:300]
        back, page = self._follow(urljoin(url, answer.headers["Location"]))
        assert page is None, f"the provider stopped at {back}: {page.text[:500]}"
        return back

    def authorize_shows_login(self, authorize_url: str) -> bool:
        """Return True when ``authorize_url`` shows the provider's login form (no provider
        session), False when it goes straight back to the portal."""
        _url, page = self._follow(authorize_url)
        return page is not None and 'name="login"' in page.text

    def sign_out(self, end_session_url: str) -> str:
        """Confirm the provider's sign-out page; return the URL it sends the browser to."""
        url, page = self._follow(end_session_url)
        assert page is not None, f"no sign-out page at the provider: went to {url}"
        form = re.search(r'<form id="op.logoutForm" method="post" action="([^"]+)">'
                         r'<input type="hidden" name="xsrf" value="([^"]+)"/>', page.text)
        assert form, f"no sign-out form: {page.text[:300]}"
        answer = self.http.post(urljoin(url, unescape(form.group(1))), allow_redirects=False,
                                data={"xsrf": form.group(2), "logout": "yes"}, timeout=10)
        assert answer.status_code in (302, 303), answer.text[:300]
        back, page = self._follow(urljoin(url, answer.headers["Location"]))
        assert page is None, f"the provider stopped at {back}"
        return back
