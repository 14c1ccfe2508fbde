"""Errors of the experiments domain."""

from __future__ import annotations

from daaas.portal.errors import PortalError

UNAVAILABLE = ("The experiment catalogue (ICAT) is not answering; you can still launch without "
               "an experiment.")


class ExperimentsUnavailable(PortalError):
    """The experiment catalogue cannot be reached, fails, or refuses the portal's account.

    The user message is always :data:`UNAVAILABLE`; the log message says what happened (never
    the reader account's password or the ICAT session id).
    """

    status_code = 503
    code = "experiments_unavailable"

    def __init__(self, log_message: str) -> None:
        super().__init__(UNAVAILABLE, log_message)
