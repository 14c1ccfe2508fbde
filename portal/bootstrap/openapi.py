"""OpenAPI path items of the VM-facing bootstrap API; the bodies are the models in :mod:`.schemas`.

Called by a machine's bootstrap agent, never by people: see contextualisation/BOOTSTRAP_PROTOCOL.md.
"""

from __future__ import annotations

from typing import Any

from daaas.portal.api.schema import content, errors, request_body
from daaas.portal.bootstrap.schemas import (
    BootstrapRequest,
    ClaimedMachine,
    ClaimRequest,
    MachineSecrets,
    StatusAccepted,
    StatusReport,
)

MACHINE_ID = {"name": "machine_id", "in": "path", "required": True, "schema": {"type": "string"}}
PATHS: dict[str, Any] = {
    "/context/{machine_id}/bootstrap": {"parameters": [MACHINE_ID], "post": {
        "summary": "A machine trades its single-use bootstrap token for its secrets (agent only)",
        "security": [], "requestBody": request_body(BootstrapRequest),
        "responses": {"200": content(MachineSecrets, "The secrets; the token is now dead"),
                      **errors(400, 403, 503, _400="No token in the body",
                               _403="Unknown machine, or a wrong, used or expired token; "
                                    "nothing changed",
                               _503="The storage key cannot be read yet; nothing consumed, "
                                    "try again")}}},
    "/context/{machine_id}/claim": {"parameters": [MACHINE_ID], "post": {
        "summary": "A warm pool's machine asks whether it was claimed, and for whom (agent "
                   "only)",
        "description": "`Authorization: Bearer <report_token>` of its pool exchange, after "
                       "its 'pooled-ready' report. 204 with Retry-After while it waits in its "
                       "pool; once claimed and handed over, its claimer's session and secrets, "
                       "once (the answer carries a new report token for the final report).",
        "security": [{"bearer": []}], "requestBody": request_body(ClaimRequest, required=False),
        "responses": {"200": content(ClaimedMachine, "The claimer's session; given once"),
                      "204": {"description": "Not claimed yet: ask again after Retry-After"},
                      **errors(400, 403, 503, _400="Not a JSON object",
                               _403="Not the machine's token, or the machine is not waiting "
                                    "for a claim; nothing changed",
                               _503="The storage key cannot be read yet; nothing taken, "
                                    "try again")}}},
    "/context/{machine_id}/status": {"parameters": [MACHINE_ID], "post": {
        "summary": "A machine reports it is ready, or why it failed (agent only)",
        "description": "`Authorization: Bearer <report_token>`, or the bootstrap token before "
                       "the exchange (and for a 'failed' report). The reconciler applies it: "
                       "contextualising -> ready, or -> error with the reason.",
        "security": [{"bearer": []}], "requestBody": request_body(StatusReport),
        "responses": {"202": content(StatusAccepted, "Recorded (a repeat changes nothing)"),
                      **errors(400, 403, 409, _400="Not a status report",
                               _403="Not the machine's token; nothing changed",
                               _409="Contradicts the machine's earlier report")}}},
}
