"""OpenAPI path items and schemas of the VM-facing context API (merged into /api/v1's document).

Called by a machine's bootstrap agent, never by people: see contextualisation/BOOTSTRAP_PROTOCOL.md.
"""

from __future__ import annotations

from typing import Any

SECRET_FILE = {
    "type": "object", "required": ["path", "content"],
    "properties": {"path": {"type": "string"}, "content": {"type": "string"},
                   "mode": {"type": "string", "pattern": "^0?[0-7]{3}$"},
                   "owner": {"type": "string"}},
}
SCHEMAS: dict[str, Any] = {
    "BootstrapRequest": {"type": "object", "required": ["token"], "properties": {
        "token": {"type": "string", "description": "The single-use token from user-data."}}},
    "MachineSecrets": {
        "type": "object", "required": ["report_token", "files"], "additionalProperties": False,
        "properties": {
            "vnc_password": {"type": "string", "description": "When the machine runs VNC."},
            "rdp_password": {"type": "string",
                             "description": "The user's login password, when xrdp is on."},
            "report_token": {"type": "string",
                             "description": "Bearer token for the status report."},
            "files": {"type": "array", "items": {"$ref": "#/components/schemas/SecretFile"}},
        }},
    "SecretFile": SECRET_FILE,
    "StatusReport": {"type": "object", "required": ["status"], "properties": {
        "status": {"enum": ["ready", "failed"]},
        "reason": {"type": "string", "maxLength": 500,
                   "description": "With 'failed': the step and thing that failed, one line."}}},
    "StatusAccepted": {"type": "object", "required": ["machine_id", "status"], "properties": {
        "machine_id": {"type": "string"}, "status": {"enum": ["ready", "failed"]}}},
}
MACHINE_ID = {"name": "machine_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{schema}"}}}}


PATHS: dict[str, Any] = {
    "/context/{machine_id}/bootstrap": {"parameters": [MACHINE_ID], "post": {
        "summary": "A machine trades its single-use bootstrap token for its secrets (agent only)",
        "security": [], "requestBody": _body("BootstrapRequest"),
        "responses": {"200": _json("MachineSecrets", "The secrets; the token is now dead"),
                      "400": _json("Error", "No token in the body"),
                      "403": _json("Error", "Unknown machine, or a wrong, used or expired "
                                            "token; nothing changed")}}},
    "/context/{machine_id}/status": {"parameters": [MACHINE_ID], "post": {
        "summary": "A machine reports it is ready, or why it failed (agent only)",
        "description": "`Authorization: Bearer <report_token>`, or the bootstrap token before "
                       "the exchange (and for a 'failed' report). The reconciler applies it: "
                       "contextualising -> ready, or -> error with the reason.",
        "security": [{"bearer": []}], "requestBody": _body("StatusReport"),
        "responses": {"202": _json("StatusAccepted", "Recorded (a repeat changes nothing)"),
                      "400": _json("Error", "Not a status report"),
                      "403": _json("Error", "Not the machine's token; nothing changed"),
                      "409": _json("Error", "Contradicts the machine's earlier report")}}},
}
