"""OpenAPI path items and schemas of the desktop-access API (merged into /api/v1's document)."""

from __future__ import annotations

from typing import Any

DESKTOP_ACCESS = {
    "type": "object", "required": ["token", "websocket_url", "password", "expires_at"],
    "additionalProperties": False,
    "properties": {
        "token": {"type": "string", "description": "One-time token; spent by the first "
                                                   "websocket connection."},
        "websocket_url": {"type": "string", "pattern": "^wss?://",
                          "description": "Open this websocket (it carries the token) with an "
                                         "RFB client such as noVNC."},
        "password": {"type": "string", "description": "The desktop's VNC password. It is only "
                                                      "ever sent in this body."},
        "expires_at": {"type": "string", "format": "date-time",
                       "description": "The token is refused after this time."},
    },
}
SCHEMAS: dict[str, Any] = {"DesktopAccess": DESKTOP_ACCESS}
MACHINE_ID = {"name": "machine_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {
        "schema": {"$ref": "#/components/schemas/Error"}}}}


ERRORS = {"401": _error("Not signed in"), "403": _error("Not allowed (CSRF)"),
          "404": _error("Not one of the user's machines, or gone at the provider"),
          "409": _error("Not possible now; the message says why")}
PATHS: dict[str, Any] = {
    "/machines/{machine_id}/access": {"parameters": [MACHINE_ID], "post": {
        "summary": "A fresh one-time desktop token, the websocket URL and the VNC password",
        "responses": {"201": {"description": "Created (single use, short-lived)", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/DesktopAccess"}}}},
            **ERRORS}}},
    "/machines/{machine_id}/rdp": {"parameters": [MACHINE_ID], "get": {
        "summary": "A .rdp file for a native RDP client, where the environment and provider "
                   "offer RDP",
        "responses": {"200": {"description": "The .rdp file (an attachment)", "content": {
            "application/x-rdp": {"schema": {"type": "string"}}}},
            **{k: v for k, v in ERRORS.items() if k != "403"}}}},
}
