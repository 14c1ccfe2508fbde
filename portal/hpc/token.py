"""Short-lived per-user JSON Web Tokens for Slurm's auth/jwt plugin (HS256, Slurm's jwt_key).

Slurm accepts a token signed with its ``jwt_key`` that names the user in ``sun`` and carries an
expiry in ``exp`` (seconds since the epoch). The portal signs them itself with the standard
library: no shared service account, every request runs as the person asking.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from pathlib import Path

#: Accounts the portal never mints a token for, whatever its own user names are.
PRIVILEGED_NAMES = frozenset({"root", "slurm"})


class KeyUnreadable(Exception):
    """The JWT key file is missing, unreadable or too short; the message names the file."""


def read_key(path: str) -> bytes:
    """Return the bytes of Slurm's jwt_key file.

    Raises KeyUnreadable when the file cannot be read or holds fewer than 32 bytes.
    """
    try:
        key = Path(path).read_bytes()
    except OSError as exc:
        raise KeyUnreadable(f"cannot read the Slurm JWT key {path}: {exc.strerror}") from None
    if len(key) < 32:
        raise KeyUnreadable(f"the Slurm JWT key {path} has {len(key)} bytes; Slurm needs 32+")
    return key


def mint(key: bytes, username: str, issued: datetime, lifetime_seconds: int) -> str:
    """Return an HS256 JWT for ``username`` valid from ``issued`` for ``lifetime_seconds``.

    Raises ValueError for a privileged account name (root, slurm) or an empty one.
    """
    if not username or username in PRIVILEGED_NAMES:
        raise ValueError(f"refusing to mint a Slurm token for '{username}'")
    iat = int(issued.timestamp())
    header = _encode({"alg": "HS256", "typ": "JWT"})
    payload = _encode({"sun": username, "iat": iat, "exp": iat + lifetime_seconds})
    signature = hmac.new(key, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def _encode(claims: dict[str, object]) -> str:
    return _b64(json.dumps(claims, separators=(",", ":")).encode())


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
