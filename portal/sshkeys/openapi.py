"""OpenAPI path items of the SSH key API; the bodies are the models in :mod:`.schemas`."""

from __future__ import annotations

from typing import Any

from daaas.portal.api.schema import ID_SCHEMA, content, errors, request_body
from daaas.portal.sshkeys.schemas import SshKeyInfo, SshKeyList, SshKeyRequest

KEY_ID = {"name": "key_id", "in": "path", "required": True, "schema": ID_SCHEMA}
PATHS: dict[str, Any] = {
    "/ssh-keys": {
        "get": {"summary": "The user's SSH public keys (machines launched from now on get them "
                           "in the user's authorized_keys)",
                "responses": {"200": content(SshKeyList, "OK"), **errors(401)}},
        "post": {"summary": "Add an SSH public key to the user's profile",
                 "requestBody": request_body(SshKeyRequest),
                 "responses": {"201": content(SshKeyInfo, "Added"), **errors(
                     400, 401, 403, 409,
                     _400="Not one valid public key: a private key, an unknown or refused "
                          "type, RSA below 2048 bits; the message names the key",
                     _409="The key is already on the profile, or the profile holds as many "
                          "keys as allowed")}}},
    "/ssh-keys/{key_id}": {
        "parameters": [KEY_ID],
        "delete": {"summary": "Remove one of the user's SSH keys (machines launched from now "
                              "on no longer get it)",
                   "responses": {"204": {"description": "Removed"}, **errors(401, 403, 404)}}},
}
