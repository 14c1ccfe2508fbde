"""Errors of the experiments domain."""

from __future__ import annotations

from daaas.portal.errors import PortalError

UNAVAILABLE = ("The experiment catalogue (ICAT) is not answering; you can still launch without "
               "an experiment.")

NOT_READ_YET = ("Your experiments have not been read from the experiment catalogue (ICAT) yet "
                "(it is being asked, or is not answering); try again in a minute. You can "
                "still launch without an experiment.")


class ExperimentsUnavailable(PortalError):
    """The experiment catalogue cannot be reached, fails, or refuses the portal's account.

    The user message is always :data:`UNAVAILABLE`; the log message says what happened (never
    the reader account's password or the ICAT session id).
    """

    status_code = 503
    code = "experiments_unavailable"

    def __init__(self, log_message: str, user_message: str = UNAVAILABLE) -> None:
        super().__init__(user_message, log_message)


class ExperimentsNotReadYet(ExperimentsUnavailable):
    """Nothing is recorded yet about a user's experiments (a token used before its user ever
    signed in): the worker reads them within seconds, and no view asks the catalogue itself."""

    code = "experiments_not_read_yet"

    def __init__(self, username: str) -> None:
        super().__init__(f"no observation of {username}'s experiments yet; the worker looks "
                         "within ~10 s", NOT_READ_YET)
