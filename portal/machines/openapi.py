"""OpenAPI path items and schemas of the machines API (merged into /api/v1's document)."""

from __future__ import annotations

from typing import Any

NULLABLE_SECONDS = {"type": ["number", "null"]}
MACHINE = {
    "type": "object",
    "required": ["id", "owner", "environment", "flavor", "state", "error_reason", "created_at",
                 "state_changed_at", "expires_at", "phases", "can_stop", "links"],
    "properties": {
        "id": {"type": "string"}, "owner": {"type": "string"},
        "environment": {"type": "object", "required": ["name", "title"], "properties": {
            "name": {"type": "string"}, "title": {"type": "string"}}},
        "flavor": {"type": "string"},
        "state": {"enum": ["requested", "provisioning", "contextualising", "ready", "stopping",
                           "stopped", "deleting", "deleted", "error"]},
        "error_reason": {"type": "string"},
        "created_at": {"type": "string", "format": "date-time"},
        "state_changed_at": {"type": "string", "format": "date-time"},
        "expires_at": {"type": "string", "format": "date-time"},
        "phases": {"type": "object", "required": ["queue", "provision", "contextualise",
                                                  "total_to_ready"],
                   "properties": {k: NULLABLE_SECONDS for k in
                                  ("queue", "provision", "contextualise", "total_to_ready")}},
        "can_stop": {"type": "boolean", "description": "Its provider can stop and start it"},
        "links": {"type": "object", "properties": {
            "page": {"type": "string"}, "desktop": {"type": "string"}, "rdp": {"type": "string"},
            "stop": {"type": "string"}, "start": {"type": "string"}}},
        "experiment": {"type": ["object", "null"], "properties": {
            "id": {"type": "integer"}, "visit_id": {"type": "string"},
            "title": {"type": "string"}, "data_path": {"type": "string"}}},
        "events": {"type": "array", "items": {"type": "object",
                                              "required": ["from", "to", "at", "message"]}},
    },
}
SCHEMAS: dict[str, Any] = {
    "Machine": MACHINE,
    "MachineList": {"type": "object", "required": ["machines", "total", "limit", "offset"],
                    "properties": {
                        "machines": {"type": "array",
                                     "items": {"$ref": "#/components/schemas/Machine"}},
                        "total": {"type": "integer"}, "limit": {"type": "integer"},
                        "offset": {"type": "integer"}}},
    "LaunchRequest": {"type": "object", "required": ["environment"], "properties": {
        "environment": {"type": "string"}, "flavor": {"type": "string"},
        "experiment": {"type": "integer", "description": "Bind to this investigation"}}},
}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _json("Error", "Error") for code in codes}


MACHINE_ID = {"name": "machine_id", "in": "path", "required": True, "schema": {"type": "string"}}
PATHS: dict[str, Any] = {
    "/machines": {
        "get": {"summary": "The user's machines (admins: ?all=1 for everyone's)",
                "parameters": [
                    {"name": "all", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query",
                     "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}},
                    {"name": "offset", "in": "query",
                     "schema": {"type": "integer", "minimum": 0, "default": 0}}],
                "responses": {"200": _json("MachineList", "OK"), **_errors(400, 401, 403)}},
        "post": {"summary": "Launch a machine of an environment (answers at once; the "
                            "reconciler does the rest)",
                 "requestBody": {"required": True, "content": {"application/json": {
                     "schema": {"$ref": "#/components/schemas/LaunchRequest"}}}},
                 "responses": {"202": _json("Machine", "Requested"),
                               **_errors(400, 401, 403, 404, 409)}},
    },
    "/machines/{machine_id}": {
        "parameters": [MACHINE_ID],
        "get": {"summary": "One machine with its events",
                "responses": {"200": _json("Machine", "OK"), **_errors(401, 404)}},
        "delete": {"summary": "Delete a machine (answers at once)",
                   "responses": {"202": _json("Machine", "Deleting"),
                                 **_errors(401, 403, 404)}},
    },
    "/machines/{machine_id}/stop": {
        "parameters": [MACHINE_ID],
        "post": {"summary": "Stop a ready machine, keeping its disk and freeing the cloud's "
                            "cores and GPU (answers at once; stopping or stopped is success)",
                 "responses": {"202": _json("Machine", "Stopping"),
                               **_errors(401, 403, 404, 409)}},
    },
    "/machines/{machine_id}/start": {
        "parameters": [MACHINE_ID],
        "post": {"summary": "Start a stopped machine again (answers at once; 409 unless "
                            "stopped)",
                 "responses": {"202": _json("Machine", "Provisioning"),
                               **_errors(401, 403, 404, 409)}},
    },
}
