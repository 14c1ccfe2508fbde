"""JSON API for the user's SSH public keys under /api/v1 (bodies: :mod:`.schemas`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from daaas.portal.api.schema import ID, dump, parse_body, with_ids
from daaas.portal.auth.current import require_user
from daaas.portal.lifecycle import db
from daaas.portal.sshkeys import service
from daaas.portal.sshkeys.models import SshKey
from daaas.portal.sshkeys.schemas import SshKeyInfo, SshKeyList, SshKeyRequest

blueprint = with_ids(Blueprint("sshkeys_api", __name__, url_prefix="/api/v1"))


@blueprint.get("/ssh-keys")
def list_keys() -> dict[str, Any]:
    """Return the signed-in user's SSH keys (:class:`SshKeyList`). Raises AuthenticationRequired."""
    return dump(SshKeyList(keys=[key_reply(k) for k in service.keys_of(db(), require_user())]))


@blueprint.post("/ssh-keys")
def add_key() -> tuple[dict[str, Any], int]:
    """Add a public key to the user's profile; 201 with the key.

    Raises InvalidInput (400, naming the key and what is wrong) or Conflict (409: a duplicate,
    or too many keys), answered as JSON errors.
    """
    body = parse_body(SshKeyRequest)
    return dump(key_reply(service.add_key(db(), require_user(), body.public_key, body.name))), 201


@blueprint.delete(f"/ssh-keys/<{ID}:key_id>")
def remove_key(key_id: int) -> tuple[str, int]:
    """Remove one of the user's keys; 204. Raises NotFound alike for a missing key and another's."""
    service.remove_key(db(), require_user(), key_id)
    return "", 204


def key_reply(key: SshKey) -> SshKeyInfo:
    """Return a key as the API shows it. Raises nothing."""
    return SshKeyInfo(id=key.id, name=key.name, type=key.key_type, bits=key.bits,
                      fingerprint=key.fingerprint, public_key=key.public_key,
                      created_at=key.created_at.isoformat())
