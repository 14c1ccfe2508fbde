"""Typed errors of contextualisation: a message for the person, a separate one for the log.

They mirror :class:`daaas.portal.errors.PortalError` (``user_message``/``log_message``) without
importing the portal, so this package stays usable on its own; the portal translates them
where it calls in.
"""

from __future__ import annotations


class ContextualisationError(Exception):
    """A context could not be built or rendered; ``user_message`` says what to do next."""

    def __init__(self, user_message: str, log_message: str | None = None) -> None:
        super().__init__(log_message or user_message)
        self.user_message = user_message
        self.log_message = log_message or user_message


class InvalidContext(ContextualisationError):
    """The data given for a session (user, environment, mounts, site) cannot be used."""


class UserDataTooLarge(ContextualisationError):
    """The rendered user-data exceeds the cloud's limit even when compressed."""

    def __init__(self, environment: str, size: int, limit: int, launchers: int) -> None:
        super().__init__(
            f"The environment '{environment}' cannot be started: its start-up configuration is "
            "too large for the cloud. Please choose another environment and report this to the "
            "facility's support team, who can reduce its number of applications or split it.",
            f"user-data for environment {environment!r} is {size} bytes after gzip and base64, "
            f"over the limit of {limit} ({launchers} application launchers)",
        )
        self.environment = environment
        self.size = size
        self.limit = limit
