"""Per-machine secrets derived from the portal's secret key, so none is stored; and the one
form in which the portal stores a token it hands out (:func:`token_digest`).

Each secret is an HMAC-SHA256 of the machine id under its own label, so knowing one tells nothing
about another, and a worker that launches a machine twice (after a crash) hands out the same
values.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import string

VNC_ALPHABET = string.ascii_letters + string.digits
RDP_PASSWORD_LENGTH = 20


def _derive(secret_key: str, label: str, machine_id: str) -> bytes:
    return hmac.new(secret_key.encode(), f"{label}:{machine_id}".encode(), hashlib.sha256).digest()


def vnc_password(secret_key: str, machine_id: str) -> str:
    """Return the machine's 8-character VNC password (VNC reads only the first 8)."""
    digest = _derive(secret_key, "vnc", machine_id)
    return "".join(VNC_ALPHABET[byte % len(VNC_ALPHABET)] for byte in digest[:8])


def rdp_password(secret_key: str, machine_id: str) -> str:
    """Return the machine's login password for xrdp: 20 letters and digits. Raises nothing."""
    digest = _derive(secret_key, "rdp", machine_id)
    return "".join(VNC_ALPHABET[byte % len(VNC_ALPHABET)]
                   for byte in digest[:RDP_PASSWORD_LENGTH])


def token_digest(token: str) -> str:
    """Return the hex SHA-256 of ``token``, the only form in which bootstrap, report and desktop
    tokens are stored. Raises nothing."""
    return hashlib.sha256(token.encode()).hexdigest()


def bootstrap_token(secret_key: str, machine_id: str) -> str:
    """Return the machine's bootstrap token (43 URL-safe characters). Raises nothing.

    Derived, not random, so a launch repeated after a crash renders the same user-data as the
    server the cloud already holds; it is single-use because the portal records its use.
    """
    return base64.urlsafe_b64encode(_derive(secret_key, "bootstrap", machine_id)) \
        .rstrip(b"=").decode()
