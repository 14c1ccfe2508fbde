"""Log output: plain text lines, or one JSON object per line (``log_format = "json"``) carrying
the request id, the signed-in user and the machine id, for ELK or Loki.

Every web request gets a request id (the front proxy's ``X-Request-Id`` when it is a plain
token, else a fresh one), returned in the response's ``X-Request-Id`` header and added to every
log record written while the request runs, whichever logger writes it.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid
from typing import IO

from flask import Flask, Response, g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

from daaas.portal.config import Settings

REQUEST_ID_HEADER = "X-Request-Id"
#: An incoming request id is kept only when it looks like one (no spaces, quotes, newlines).
_INCOMING_ID = re.compile(r"^[A-Za-z0-9._:-]{8,64}$")
#: The fields every JSON line has, in this order (absent values are null).
JSON_FIELDS = ("levelname", "name", "message", "request_id", "user", "machine_id")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: These log request bodies, user_data and tokens at DEBUG: never below INFO.
NOISY = ("keystoneauth", "openstack", "urllib3")


class RequestContext(logging.Filter):
    """Adds ``request_id``, ``user`` and ``machine_id`` to each record (None outside a request
    or when unknown); values a log call passes in ``extra`` are kept. Never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Annotate ``record``; returns True."""
        inside = has_request_context()
        for name, value in (("request_id", g.get("request_id") if inside else None),
                            ("user", _username() if inside else None),
                            ("machine_id", _machine_id() if inside else None)):
            if getattr(record, name, None) is None:
                setattr(record, name, value)
        return True


def _username() -> str | None:
    user = g.get("user")  # only what the request already loaded: logging never queries
    name = getattr(user, "username", None)
    return name if isinstance(name, str) else None


def _machine_id() -> str | None:
    value = (request.view_args or {}).get("machine_id")
    return value if isinstance(value, str) else None


def formatter(log_format: str) -> logging.Formatter:
    """Return the formatter for ``log_format`` ("text" or "json"). Raises nothing."""
    if log_format == "json":
        return JsonFormatter(list(JSON_FIELDS), timestamp="timestamp",
                             rename_fields={"levelname": "level", "name": "logger"})
    return logging.Formatter(TEXT_FORMAT)


def configure(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """Send the root logger's records to ``stream`` (stderr) in ``settings.log_format`` at
    ``settings.log_level``, replacing handlers an earlier call installed; returns the handler.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter(settings.log_format))
    handler.addFilter(RequestContext())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "daaas", False)]:
        root.removeHandler(old)
    handler.daaas = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.INFO, root.level))
    return handler


def install(app: Flask) -> None:
    """Give each request of ``app`` its id (``g.request_id``) and return it in the response's
    ``X-Request-Id`` header."""
    app.before_request(_assign_request_id)
    app.after_request(_send_request_id)


def _assign_request_id() -> None:
    incoming = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = incoming if _INCOMING_ID.match(incoming) else uuid.uuid4().hex


def _send_request_id(response: Response) -> Response:
    request_id = g.get("request_id")
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    return response
