"""Where browsers reach the desktop proxy."""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

from daaas.portal.config import Settings

UNSPECIFIED = {"", "0.0.0.0", "::", "[::]"}


def websocket_base(settings: Settings, request_host: str = "") -> str:
    """Return the proxy's websocket URL without a token.

    ``websockify_url`` wins (a reverse proxy in front of websockify); otherwise the proxy's
    port on the host of ``public_url``, of the browser's request (``request_host``, e.g.
    ``portal.example:8080``), or of ``settings.host``. Raises nothing.
    """
    if settings.websockify_url:
        return settings.websockify_url
    secure = settings.public_url.startswith("https:")
    host = urlsplit(settings.public_url).hostname or _hostname(request_host) or settings.host
    if host in UNSPECIFIED:
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{'wss' if secure else 'ws'}://{host}:{settings.websockify_port}/"


def websocket_url(settings: Settings, token: str, request_host: str = "") -> str:
    """Return the websocket URL that spends ``token`` (as ``?token=``). Raises nothing."""
    base = websocket_base(settings, request_host)
    return f"{base}{'&' if '?' in base else '?'}{urlencode({'token': token})}"


def _hostname(netloc: str) -> str:
    return (urlsplit(f"//{netloc}").hostname or "") if netloc else ""
