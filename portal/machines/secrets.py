"""Per-machine secrets derived from the portal's secret key, so none is stored."""

from __future__ import annotations

import hashlib
import hmac
import string

VNC_ALPHABET = string.ascii_letters + string.digits


def vnc_password(secret_key: str, machine_id: str) -> str:
    """Return the machine's 8-character VNC password (VNC reads only the first 8)."""
    digest = hmac.new(secret_key.encode(), f"vnc:{machine_id}".encode(), hashlib.sha256).digest()
    return "".join(VNC_ALPHABET[byte % len(VNC_ALPHABET)] for byte in digest[:8])
