"""Typed errors: a message for the person, a separate one for the log.

Services raise these; the single error handler in :mod:`daaas.portal.lifecycle` answers with HTML or
JSON depending on the request's Accept header. Library exceptions are translated where they
enter the portal, never shown raw.
"""

from __future__ import annotations


class PortalError(Exception):
    """An error with a message a person can act on.

    ``user_message`` is shown to the user; ``log_message`` (default: the user message) goes to
    the log and may carry details the user must not see.
    """

    status_code = 400
    code = "bad_request"

    def __init__(self, user_message: str, log_message: str | None = None) -> None:
        super().__init__(log_message or user_message)
        self.user_message = user_message
        self.log_message = log_message or user_message


class InvalidInput(PortalError):
    """The request carried a value the portal cannot use."""

    status_code = 400
    code = "invalid_input"


class AuthenticationRequired(PortalError):
    """The request has no valid session or token."""

    status_code = 401
    code = "authentication_required"


class SignInFailed(PortalError):
    """Wrong user name or password (deliberately not saying which)."""

    status_code = 401
    code = "sign_in_failed"


class Forbidden(PortalError):
    """The signed-in user may not do this."""

    status_code = 403
    code = "forbidden"


class NotFound(PortalError):
    """The thing asked for does not exist (or is not the user's to see)."""

    status_code = 404
    code = "not_found"


class Conflict(PortalError):
    """The request clashes with the current state (a name already taken, say)."""

    status_code = 409
    code = "conflict"


class RateLimited(PortalError):
    """Too many attempts; the message says when to try again."""

    status_code = 429
    code = "rate_limited"
