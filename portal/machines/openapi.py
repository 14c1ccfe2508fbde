"""OpenAPI path items of the machines API; the bodies are the models in :mod:`.schemas`."""

from __future__ import annotations

from typing import Any

from daaas.portal.api.schema import content, errors, query_parameters, request_body
from daaas.portal.machines.schemas import (
    ActivityAccepted,
    ActivityReport,
    KeepRunningRequest,
    LaunchRequest,
    Machine,
    MachineList,
    MachineListQuery,
    RenameRequest,
)

MACHINE_ID = {"name": "machine_id", "in": "path", "required": True, "schema": {"type": "string"}}
IDEMPOTENCY_KEY = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "Makes the launch idempotent: the same key again answers 200 with the "
                   "machine it launched; with another body, 422.",
    "schema": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[!-~]+$"}}
PAGE = query_parameters(MachineListQuery)


def _change(summary: str, answer: str, *codes: int) -> dict[str, Any]:
    return {"parameters": [MACHINE_ID], "post": {"summary": summary, "responses": {
        "202": content(Machine, answer), **errors(401, 403, 404, *codes)}}}


PATHS: dict[str, Any] = {
    "/machines": {
        "get": {"summary": "The user's machines (admins: ?all=1 for everyone's)",
                "parameters": PAGE,
                "responses": {"200": content(MachineList, "OK"), **errors(400, 401, 403)}},
        "post": {"summary": "Launch a machine of an environment (answers at once; the "
                            "reconciler does the rest)",
                 "parameters": [IDEMPOTENCY_KEY],
                 "requestBody": request_body(LaunchRequest),
                 "responses": {"202": content(Machine, "Requested"),
                               "200": content(Machine, "Launched before with this "
                                              "Idempotency-Key: that machine"),
                               **errors(400, 401, 403, 404, 409, 422)}},
    },
    "/machines/{machine_id}": {
        "parameters": [MACHINE_ID],
        "get": {"summary": "One machine with its events",
                "responses": {"200": content(Machine, "OK"), **errors(401, 404)}},
        "patch": {"summary": "Rename a machine (its owner only; 1 to 80 printable "
                           "characters, unlike the owner's other machines' names)",
                  "requestBody": request_body(RenameRequest),
                  "responses": {"200": content(Machine, "Renamed"),
                                **errors(400, 401, 403, 404, 409)}},
        "delete": {"summary": "Delete a machine (answers at once)",
                   "responses": {"202": content(Machine, "Deleting"), **errors(401, 403, 404)}},
    },
    "/machines/{machine_id}/stop": _change(
        "Stop a ready machine, keeping its disk and freeing the cloud's cores and GPU (answers "
        "at once; stopping or stopped is success)", "Stopping", 409),
    "/machines/{machine_id}/extend": {"parameters": [MACHINE_ID], "post": {
        "summary": "Extend a machine's life by one step of its environment's policy (200), "
                   "or ask an administrator when the policy says so (202, pending); 403 when "
                   "its environment allows no extension, 409 past the policy's maximum",
        "responses": {"200": content(Machine, "Extended"),
                      "202": content(Machine, "Waiting for an administrator's approval"),
                      **errors(401, 403, 404, 409)}}},
    "/machines/{machine_id}/keep-running": {"parameters": [MACHINE_ID], "post": {
        "summary": "Keep a ready machine running for some hours whatever its desktop "
                   "connections (not stopped as idle), within the portal's limit and never "
                   "past its end; hours 0 stops keeping it. 400 past the limit, 403 when not "
                   "offered, 409 unless ready",
        "requestBody": request_body(KeepRunningRequest),
        "responses": {"200": content(Machine, "Kept running (or no longer)"),
                      **errors(400, 401, 403, 404, 409)}}},
    "/context/{machine_id}/activity": {"parameters": [MACHINE_ID], "post": {
        "summary": "A VM agent's periodic activity report (CPU use, logged-in sessions), with "
                   "the machine's report token as bearer; activity keeps it from an idle stop",
        "security": [{"bearer": []}], "requestBody": request_body(ActivityReport),
        "responses": {"202": content(ActivityAccepted, "Recorded"), **errors(400, 403)}}},
    "/machines/{machine_id}/start": _change(
        "Start a stopped machine again (answers at once; 409 unless stopped)", "Provisioning",
        409),
}
