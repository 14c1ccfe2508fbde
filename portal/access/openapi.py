"""OpenAPI path items of the desktop-access API; the bodies are the models in :mod:`.schemas`."""

from __future__ import annotations

from typing import Any

from daaas.portal.access.schemas import DesktopAccess, DesktopStatus, RdpSignIn, StatusQuery
from daaas.portal.api.schema import content, errors, query_parameters

MACHINE_ID = {"name": "machine_id", "in": "path", "required": True, "schema": {"type": "string"}}
WHY = {"_403": "Not allowed (CSRF)",
       "_404": "Not one of the user's machines, or gone at the provider",
       "_409": "Not possible now; the message says why"}
PATHS: dict[str, Any] = {
    "/machines/{machine_id}/access": {"parameters": [MACHINE_ID], "post": {
        "summary": "A fresh one-time desktop token and the websocket URL that spends it",
        "responses": {"201": content(DesktopAccess, "Created (single use, short-lived)"),
                      **errors(401, 403, 404, 409, **WHY)}}},
    "/machines/{machine_id}/desktop-status": {"parameters": [MACHINE_ID], "get": {
        "summary": "What the desktop page shows: the machine's state, why its desktop cannot "
                   "be opened now, whether it can be started or has ended, and the "
                   "administrators who opened it; with wait and state, a bounded long poll "
                   "answered when the machine leaves that state (a push, no timer)",
        "parameters": query_parameters(StatusQuery),
        "responses": {"200": content(DesktopStatus, "The desktop's status"),
                      **errors(400, 401, 404, **WHY)}}},
    "/machines/{machine_id}/rdp": {"parameters": [MACHINE_ID], "get": {
        "summary": "A .rdp file for a native RDP client, where the environment and provider "
                   "offer RDP",
        "responses": {"200": {"description": "The .rdp file (an attachment)", "content": {
            "application/x-rdp": {"schema": {"type": "string"}}}},
            **errors(401, 404, 409, **WHY)}}},
    "/machines/{machine_id}/rdp-sign-in": {"parameters": [MACHINE_ID], "post": {
        "summary": "A one-time RDP sign-in secret (a short-lived token signed by the portal, "
                   "checked by the machine): the password for the .rdp file's user, once",
        "responses": {"201": content(RdpSignIn, "Created (single use, short-lived)"),
                      **errors(401, 403, 404, 409, _403="Not the machine's owner, or no CSRF "
                               "token", _404=WHY["_404"], _409=WHY["_409"])}}},
}
