"""OpenAPI path items of the sharing API; the bodies are the models in :mod:`.schemas`."""

from __future__ import annotations

from typing import Any

from daaas.portal.access.schemas import DesktopAccess, DesktopStatus
from daaas.portal.api.schema import ID_SCHEMA, content, errors, request_body
from daaas.portal.sharing.schemas import (
    InviteRequest,
    LinkRequest,
    NewLink,
    PolicyRequest,
    SharedList,
    Sharing,
    SuggestionList,
    SupportRequest,
)

MACHINE_ID = {"name": "machine_id", "in": "path", "required": True, "schema": {"type": "string"}}
NOT_OWNER = {"_403": "Not the machine's owner (only the owner shares), or no CSRF token",
             "_404": "Not a machine of the user nor shared with them"}


def _id(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": ID_SCHEMA}


PATHS: dict[str, Any] = {
    "/machines/{machine_id}/sharing": {"parameters": [MACHINE_ID], "get": {
        "summary": "Who the machine is shared with, who is on its desktop now, and (owner) "
                   "its links and owner-away policy",
        "responses": {"200": content(Sharing, "The machine's sharing"),
                      **errors(401, 404, **NOT_OWNER)}}},
    "/machines/{machine_id}/members": {"parameters": [MACHINE_ID], "post": {
        "summary": "Share the desktop with an account as user or viewer (or change its role)",
        "requestBody": request_body(InviteRequest),
        "responses": {"201": content(Sharing, "Shared; the machine's sharing"),
                      **errors(400, 401, 403, 404, **NOT_OWNER)}}},
    "/machines/{machine_id}/members/{username}": {
        "parameters": [MACHINE_ID, {"name": "username", "in": "path", "required": True,
                                    "schema": {"type": "string", "maxLength": 64}}],
        "delete": {"summary": "Remove a member (the owner; or a member leaving): their "
                              "connections close within a second",
                   "responses": {"204": {"description": "Removed"},
                                 **errors(401, 403, 404, **NOT_OWNER)}}},
    "/machines/{machine_id}/sharing/policy": {"parameters": [MACHINE_ID], "put": {
        "summary": "What happens to the others when the owner leaves the desktop",
        "requestBody": request_body(PolicyRequest),
        "responses": {"200": content(Sharing, "Set; the machine's sharing"),
                      **errors(400, 401, 403, 404, **NOT_OWNER)}}},
    "/machines/{machine_id}/links": {"parameters": [MACHINE_ID], "post": {
        "summary": "Make a share link: a one-time invitation or a view-only link",
        "requestBody": request_body(LinkRequest),
        "responses": {"201": content(NewLink, "Made; its address is shown only now"),
                      **errors(400, 401, 403, 404, **NOT_OWNER)}}},
    "/machines/{machine_id}/links/{link_id}": {
        "parameters": [MACHINE_ID, _id("link_id")],
        "delete": {"summary": "Revoke a share link: its connections close within a second",
                   "responses": {"204": {"description": "Revoked"},
                                 **errors(401, 403, 404, **NOT_OWNER)}}},
    "/machines/{machine_id}/connections/{connection_id}": {
        "parameters": [MACHINE_ID, _id("connection_id")],
        "delete": {"summary": "Remove someone from the desktop (a member loses membership)",
                   "responses": {"204": {"description": "Removed"},
                                 **errors(401, 403, 404, **NOT_OWNER)}}},
    "/machines/{machine_id}/sharing/suggestions": {"parameters": [MACHINE_ID], "get": {
        "summary": "Whom the owner might share with: the other members of the machine's "
                   "experiment who have an account here",
        "responses": {"200": content(SuggestionList, "Suggestions (empty without an "
                                                     "experiment or a reachable catalogue)"),
                      **errors(401, 403, 404, **NOT_OWNER)}}},
    "/machines/{machine_id}/support-requests": {"parameters": [MACHINE_ID], "post": {
        "summary": "An administrator asks the owner for access to the desktop (when "
                   "support_emergency_access is off); the owner is e-mailed",
        "responses": {"201": content(SupportRequest, "Asked (or already asking)"),
                      **errors(401, 403, 404, 409, _403="Not an administrator",
                               _409="Has access already")}}},
    "/machines/{machine_id}/support-requests/{request_id}/accept": {
        "parameters": [MACHINE_ID, _id("request_id")],
        "post": {"summary": "The owner accepts: the administrator becomes a member (user)",
                 "responses": {"200": content(Sharing, "Accepted; the machine's sharing"),
                               **errors(401, 403, 404, **NOT_OWNER)}}},
    "/machines/{machine_id}/support-requests/{request_id}": {
        "parameters": [MACHINE_ID, _id("request_id")],
        "delete": {"summary": "The owner refuses a support request",
                   "responses": {"204": {"description": "Refused"},
                                 **errors(401, 403, 404, **NOT_OWNER)}}},
    "/shared": {"get": {
        "summary": "The machines others shared with the caller",
        "responses": {"200": content(SharedList, "Shared with me"), **errors(401)}}},
    "/share/{secret}/access": {
        "parameters": [{"name": "secret", "in": "path", "required": True,
                        "schema": {"type": "string", "maxLength": 100}}],
        "post": {"summary": "A one-time view-only desktop token through a view link, while "
                            "the owner is connected",
                 "responses": {"201": content(DesktopAccess, "Created (single use)"),
                               **errors(401, 403, 404, 409,
                                        _404="Not a working view link",
                                        _409="The owner is not connected, or the machine is "
                                             "not ready")}}},
    "/share/{secret}/desktop-status": {
        "parameters": [{"name": "secret", "in": "path", "required": True,
                        "schema": {"type": "string", "maxLength": 100}}],
        "get": {"summary": "A view link's desktop status: the machine's state and whether the "
                           "desktop can be watched now (the owner is connected)",
                "responses": {"200": content(DesktopStatus, "The desktop's status"),
                              **errors(401, 404, _404="Not a working view link")}}},
}
