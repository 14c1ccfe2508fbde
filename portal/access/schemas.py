"""Bodies of the desktop-access routes of /api/v1 (see :mod:`daaas.portal.api.schema`)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from daaas.portal.api.schema import Query, Reply, Timestamp


class DesktopAccess(Reply):
    """A one-time desktop token and the websocket to open with it.

    There is no password: the desktop proxy signs in to the desktop's VNC server itself and
    offers the RFB client only security type None.
    """

    token: str = Field(description="One-time token; spent by the first websocket connection.")
    websocket_url: str = Field(pattern="^wss?://",
                               description="Open this websocket (it carries the token) with an "
                                           "RFB client such as noVNC; the proxy offers "
                                           "security type None only, so no password is "
                                           "asked.")
    expires_at: Timestamp = Field(description="The token is refused after this time.")


class StatusQuery(Query):
    """A long poll (issue 20): with ``wait``, a machine still in ``state`` is answered when it
    leaves it (pushed by the worker's commit) or after ``wait`` seconds, whichever is first."""

    wait: float = Field(0, ge=0, le=30, description="Seconds to wait while the machine is in "
                        "`state` (0: answer at once).")
    state: str = Field("", max_length=20, description="The state the caller knows; the answer "
                       "waits while the machine is in it.")


class DesktopOpening(Reply):
    """An administrator (not the one asking) opened this desktop."""

    who: str = Field(description="The administrator: 'Facility Admin (admin)'.")
    at: Timestamp = Field(description="When they last asked for a desktop token.")


class DesktopStatus(Reply):
    """What the desktop page shows between connections, and who else opened the desktop."""

    state: str = Field(description="The machine's state, as in the machines API.")
    message: str | None = Field(description="Why the desktop cannot be opened now; null when "
                                            "the machine is ready.")
    can_start: bool = Field(description="The machine is stopped and can be started "
                                        "(POST /machines/{id}/start).")
    ended: bool = Field(description="The desktop will not come back (the machine failed or "
                                    "is deleted): stop retrying.")
    openings: list[DesktopOpening] = Field(
        description="Administrators other than the caller who opened this desktop in the "
                    "last day, latest first.")


class RdpSignIn(Reply):
    """A one-time RDP sign-in secret: type it as the password of ``username`` in the RDP
    client. Shown once; it expires at ``expires_at`` and works once on this machine."""

    secret: str = Field(description="The one-time password (a token signed by the portal).")
    username: str = Field(description="The account to sign in as.")
    expires_at: Timestamp


REQUESTS: tuple[type[BaseModel], ...] = ()
REPLIES = (RdpSignIn, DesktopAccess, DesktopStatus, DesktopOpening)
