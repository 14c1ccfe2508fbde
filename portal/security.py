"""The web surface's own defences: trusted reverse proxies, and security headers on every
response (the portal's pages, the noVNC files, WebDAV).

The Content-Security-Policy allows scripts and styles from the portal only, plus inline
``<script>``/``<style>`` elements written in the portal's own templates: a Jinja extension
gives every such element, as written in the template source, the response's nonce. Text a
template renders (a user's input) is escaped and never gets one, so an injected element does
not run. ``connect-src`` adds the desktop proxy's WebSocket origin (``websockify_url``, or the
proxy's port on this host) for the noVNC page; ``img-src`` adds ``data:`` and ``blob:``, which
noVNC uses for the remote cursor.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, Response, g, has_request_context, request
from jinja2.ext import Extension
from werkzeug.middleware.proxy_fix import ProxyFix

from daaas.portal.access.urls import websocket_base
from daaas.portal.config import Settings
from daaas.portal.errors import InvalidInput

HSTS = "max-age=31536000"
#: ``app.config`` key: URLs whose origins forms may lead to (an identity provider's sign-in and
#: sign-out pages, when a form's answer redirects there); empty by default.
FORM_TARGETS_KEY = "DAAAS_CSP_FORM_TARGETS"
_INLINE_TAG = re.compile(r"<(script|style)(?=[\s>])(?![^>]*\bnonce=)", re.IGNORECASE)
StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def csp_nonce() -> str:
    """Return this response's CSP nonce (made on first use); empty outside a request."""
    if not has_request_context():
        return ""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(18)
    return str(g.csp_nonce)


class InlineNonce(Extension):
    """Give every ``<script>`` and ``<style>`` element written in a template's source the
    response's nonce (``nonce="{{ csp_nonce() }}"``), so the CSP needs no 'unsafe-inline'."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        """Return the template source with the nonce attribute added. Raises nothing."""
        return _INLINE_TAG.sub(r'<\1 nonce="{{ csp_nonce() }}"', source)


def is_https(settings: Settings) -> bool:
    """Return True when users reach the portal over HTTPS (``public_url`` is ``https:``)."""
    return settings.public_url.lower().startswith("https:")


def content_security_policy(settings: Settings, nonce: str, request_host: str,
                            form_targets: Iterable[str] = ()) -> str:
    """Return the Content-Security-Policy for one response. ``form_targets`` are origins a
    form may lead to besides the portal (browsers apply ``form-action`` to the redirects after
    a form, e.g. to an identity provider at sign-in or sign-out). Raises nothing."""
    inline = f" 'nonce-{nonce}'" if nonce else ""
    forms = " ".join(("'self'", *filter(None, map(_origin, form_targets))))
    sockets = _origin(websocket_base(settings, request_host))
    return "; ".join((
        "default-src 'self'",
        f"script-src 'self'{inline}",
        f"style-src 'self'{inline}",
        "img-src 'self' data: blob:",
        "font-src 'self'",
        f"connect-src 'self'{' ' + sockets if sockets else ''}",
        "object-src 'none'",
        "base-uri 'self'",
        f"form-action {forms}",
        "frame-ancestors 'none'",
    ))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in {"ws", "wss", "http", "https"} or not parts.netloc:
        return ""
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"


def static_headers(settings: Settings) -> dict[str, str]:
    """Return the headers every response gets whatever answered it. Raises nothing."""
    headers = {
        "X-Frame-Options": "DENY",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
        # Answers not made by the portal's pages (WebDAV) load nothing and are never framed.
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
    }
    if is_https(settings):
        headers["Strict-Transport-Security"] = HSTS
    return headers


def install(app: Flask, settings: Settings) -> None:
    """Set up ``app``: Secure cookies on HTTPS, the CSP with its nonces on Flask's answers,
    the other headers on every answer (a WSGI wrapper, so WebDAV gets them too), and the
    trusted proxies (werkzeug's ProxyFix, outermost). Call after every other WSGI wrapper.
    Returns None."""
    if is_https(settings):
        app.config["SESSION_COOKIE_SECURE"] = True
    app.jinja_env.add_extension(InlineNonce)
    app.jinja_env.globals["csp_nonce"] = csp_nonce

    @app.before_request
    def _refuse_nul() -> None:
        """A NUL character in an API path or query parameter is a 400 at once: no database
        column can store one (PostgreSQL refuses it), and no name or id contains one. (Pages
        check their own parameters: a ``next`` with one is ignored, not refused.)"""
        if not request.path.startswith("/api/"):
            return
        if "\x00" in request.path or any("\x00" in key or "\x00" in value
                                          for key, value in request.args.items(multi=True)):
            raise InvalidInput("The address contains a NUL character (%00).")

    @app.after_request
    def _content_security_policy(response: Response) -> Response:
        nonce = str(g.csp_nonce) if "csp_nonce" in g else ""
        response.headers["Content-Security-Policy"] = content_security_policy(
            settings, nonce, request.host, app.config.get(FORM_TARGETS_KEY, ()))
        return response

    app.wsgi_app = _with_headers(  # type: ignore[method-assign,assignment]
        app.wsgi_app, static_headers(settings))
    if settings.trusted_proxies:
        n = settings.trusted_proxies
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=n, x_proto=n, x_host=n, x_port=n)


def _with_headers(wsgi_app: WsgiApp, headers: dict[str, str]) -> WsgiApp:
    """Return ``wsgi_app`` answering with ``headers`` added where it did not set them."""
    def wrapped(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        def start(status: str, response_headers: list[tuple[str, str]],
                  exc_info: Any = None) -> Any:
            present = {name.lower() for name, _value in response_headers}
            response_headers.extend((name, value) for name, value in headers.items()
                                    if name.lower() not in present)
            return start_response(status, response_headers, exc_info)
        return wsgi_app(environ, start)
    return wrapped
