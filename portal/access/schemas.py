"""Bodies of the desktop-access routes of /api/v1 (see :mod:`daaas.portal.api.schema`)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from daaas.portal.api.schema import Reply, Timestamp


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


REQUESTS: tuple[type[BaseModel], ...] = ()
REPLIES = (DesktopAccess,)
