"""RDP sign-in without a password: a one-time token signed by the portal, checked in the VM.

The portal holds an Ed25519 key derived from its secret key (nothing stored). For the owner of a
ready machine that offers RDP it signs a short-lived token: the user name, the machine id, the
expiry and a random nonce, as a compact JWS (``EdDSA``). The page shows it once; the user pastes
it as the password in their RDP client. In the VM, xrdp's PAM stack runs
``daaas-rdp-sign-in`` through ``pam_exec`` (``expose_authtok``), which checks the signature with
the portal's public key (handed over by the bootstrap exchange), the user, the machine and the
expiry, and records the nonce so the token works once on that VM. The portal keeps the nonce,
machine, user and expiry (:class:`~daaas.portal.access.models.RdpSignIn`), never the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy.orm import Session

from daaas.portal.access.models import RdpSignIn
from daaas.portal.access.rdp import rdp_unavailable_reason
from daaas.portal.access.service import not_ready_message
from daaas.portal.audit.service import record
from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.errors import Conflict, Forbidden
from daaas.portal.machines.models import Machine
from daaas.portal.machines.service import get_machine

#: The JWS header of every sign-in token; the verifier accepts this one only. Short, as the
#: whole token is: RDP carries a password of at most 255 characters (xrdp refuses the whole
#: connection beyond that), so there is no ``typ`` and no ``iat``, the nonce is 16 characters
#: and the machine is named by the first MID_CHARS of its id (48 random bits).
HEADER = {"alg": "EdDSA"}
MID_CHARS = 12
#: What RDP clients and xrdp carry (TS_INFO_PACKET: 512 bytes of UTF-16 with its terminator).
MAX_SECRET = 255
NONCE_DIR = "/var/lib/daaas/rdp-nonces"


@dataclass(frozen=True)
class SignInSecret:
    """A one-time RDP sign-in secret: show it once, never store or log it."""

    secret: str
    username: str
    machine_id: str
    expires_at: datetime


def signing_key(secret_key: str) -> Ed25519PrivateKey:
    """Return the portal's RDP signing key, derived from its secret key. Raises nothing."""
    seed = hmac.new(secret_key.encode(), b"rdp-sign-in-ed25519", hashlib.sha256).digest()
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_pem(secret_key: str) -> str:
    """Return the PEM of the public key VMs verify sign-in tokens with. Raises nothing."""
    public = signing_key(secret_key).public_key()
    return public.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_token(secret_key: str, claims: dict[str, Any]) -> str:
    """Return ``claims`` signed as a compact JWS with the portal's key. Raises nothing."""
    head = _b64(json.dumps(HEADER, separators=(",", ":")).encode())
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    signature = signing_key(secret_key).sign(f"{head}.{body}".encode())
    return f"{head}.{body}.{_b64(signature)}"


def issue_sign_in(db: Session, settings: Settings, secret_key: str, user: User,
                  machine_id: str, now: datetime) -> SignInSecret:
    """Return a fresh one-time RDP sign-in secret for the user's own ready machine.

    Records its nonce (never the secret). Raises NotFound (not a machine the user may see),
    Forbidden (someone else's machine: the VM has only its owner's account) or Conflict (not
    ready, or RDP not offered, saying why).
    """
    machine = get_machine(db, user, machine_id)
    if machine.user_id != user.id:
        raise Forbidden("Only the machine's owner can sign in to it with RDP.",
                        f"rdp sign-in to {machine.id} by {user.username}, not the owner")
    _check_offered(machine)
    nonce = secrets.token_urlsafe(12)
    expires_at = now + timedelta(minutes=settings.rdp_sign_in_minutes)
    claims = {"sub": machine.user.username, "mid": machine.id[:MID_CHARS], "nonce": nonce,
              "exp": int(expires_at.timestamp())}
    db.add(RdpSignIn(nonce=nonce, machine_id=machine.id, user_id=user.id, issued_at=now,
                     expires_at=expires_at))
    record(db, "desktop.rdp_sign_in", actor=user.username, target=f"machine {machine.id}",
           detail=f"{machine.name}, nonce {nonce[:6]}…")
    return SignInSecret(sign_token(secret_key, claims), machine.user.username, machine.id,
                        expires_at)


def _check_offered(machine: Machine) -> None:
    reason = rdp_unavailable_reason(machine, None) or not_ready_message(machine)
    if reason:
        raise Conflict(reason, f"rdp sign-in for {machine.id} refused: {reason}")


def verifier_settings(secret_key: str, machine: Machine) -> dict[str, str] | None:
    """Return what the VM's verifier needs (the machine id and the portal's public key), or None
    when the machine does not offer RDP. Nothing in it is secret. Raises nothing."""
    if "rdp" not in machine.environment.protocols:
        return None
    return {"machine_id": machine.id, "public_key": public_key_pem(secret_key),
            "nonce_dir": NONCE_DIR}
