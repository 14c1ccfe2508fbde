"""One request lifecycle: a database session per request, committed or rolled back here only,
and one error handler answering HTML or JSON.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from daaas.portal import logs
from daaas.portal.errors import AuthenticationRequired, PortalError
from daaas.portal.runtime import runtime

log = logging.getLogger(__name__)


def db() -> Session:
    """Return this request's database session, opening it on first use."""
    if "db" not in g:
        g.db = runtime().session_factory()
    session: Session = g.db
    return session


def install(app: Flask) -> None:
    """Register the request id, the commit/rollback hooks and the error handlers on ``app``."""
    logs.install(app)
    app.after_request(_finish)
    app.teardown_request(_close)
    app.register_error_handler(PortalError, _portal_error)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)


def _finish(response: Response) -> Response:
    session = g.get("db")
    if session is not None:
        if response.status_code < 400:
            session.commit()
        else:
            session.rollback()
    return response


def _close(_exc: BaseException | None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.rollback()
        session.close()


def wants_json() -> bool:
    """Return True when the caller should get JSON (API paths, or JSON preferred)."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(status: int, code: str, message: str) -> ResponseReturnValue:
    """Render an error as JSON or HTML, as the request prefers."""
    if wants_json():
        return {"error": {"code": code, "message": message}}, status
    return render_template("error.html", status=status, message=message), status


def _portal_error(exc: PortalError) -> ResponseReturnValue:
    log.info("%s %s -> %s: %s", request.method, request.path, exc.status_code, exc.log_message)
    if isinstance(exc, AuthenticationRequired) and not wants_json():
        return redirect(url_for("auth.sign_in_form", next=request.full_path.rstrip("?")))
    return error_response(exc.status_code, exc.code, exc.user_message)


def _http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    code = (exc.name or "error").lower().replace(" ", "_")
    return error_response(status, code, exc.description or exc.name)


def _unexpected_error(exc: Exception) -> ResponseReturnValue:
    log.exception("Unexpected error on %s %s", request.method, request.path)
    return error_response(500, "internal_error",
                          "Something went wrong on our side. The error was logged; "
                          "please try again or contact the facility's support.")
