"""Bodies of the SSH key routes of /api/v1 (see :mod:`daaas.portal.api.schema`)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from daaas.portal.api.schema import Body, Reply, Timestamp
from daaas.portal.sshkeys.service import MAX_KEY_TEXT, MAX_NAME


class SshKeyRequest(Body):
    """One OpenSSH public key line, and optionally what to call it (default: its comment)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOmj3pFnz9nQu2h4NlrdM8tzajZGdGDn8h4J"
                       "YbQRGluu alice@laptop", "name": "laptop"}]})

    public_key: str = Field(min_length=1, max_length=MAX_KEY_TEXT,
                            description="One line of a .pub file: type, base64, comment.")
    name: str = Field("", max_length=MAX_NAME, description="Default: the key's comment.")


class SshKeyInfo(Reply):
    """One SSH public key on the user's profile."""

    id: int
    name: str
    type: str = Field(description="ssh-ed25519, ecdsa-sha2-nistp256, ssh-rsa, ...")
    bits: int
    fingerprint: str = Field(description="SHA256:... as ssh-keygen -lf prints it.")
    public_key: str = Field(description="<type> <base64>, as in authorized_keys.")
    created_at: Timestamp


class SshKeyList(Reply):
    """The user's SSH public keys, oldest first."""

    keys: list[SshKeyInfo]


REQUESTS = (SshKeyRequest,)
REPLIES = (SshKeyInfo, SshKeyList)
