"""Users' SSH public keys: parse and check one pasted key, keep it, list it, remove it.

A key is parsed by ``cryptography`` (:func:`load_ssh_public_key`), not by a pattern: a key
whose base64 does not hold a key of the named type is refused. Refused too: private keys,
types OpenSSH no longer accepts or the portal does not know (DSA), RSA below 2048 bits, options
before the key (``command=...``: the portal writes authorized_keys itself), the same key twice.
Every refusal names the key (its comment or its start) and says what to do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import warnings
from dataclasses import dataclass

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import load_ssh_public_key
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daaas.portal.audit.service import record
from daaas.portal.auth.models import User
from daaas.portal.errors import Conflict, InvalidInput, NotFound
from daaas.portal.sshkeys.models import SshKey

#: Key types a VM's sshd (OpenSSH 9) accepts and the portal takes.
KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
             "ssh-rsa", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com")
MIN_RSA_BITS = 2048
MAX_KEYS = 20
MAX_NAME = 100
MAX_KEY_TEXT = 16_384
HOW = "Paste one line of your public key file (~/.ssh/id_ed25519.pub, made by ssh-keygen)."


@dataclass(frozen=True)
class ParsedKey:
    """A checked public key: its type, size, ``<type> <base64>`` text, fingerprint, comment."""

    key_type: str
    bits: int
    public_key: str
    fingerprint: str
    comment: str


def parse_public_key(text: str) -> ParsedKey:
    """Return the one OpenSSH public key in ``text``, checked.

    Raises InvalidInput naming the key for an empty text, a private key, several lines,
    options, an unknown or refused type, a blob that is not a key of its type, or RSA below
    2048 bits.
    """
    text = text.strip()
    if not text:
        raise InvalidInput(f"No key given. {HOW}")
    if "PRIVATE KEY" in text:
        raise InvalidInput("This is a private key: never paste it anywhere, it is yours alone. "
                           "Paste the public key, the file ending in .pub.")
    if len(text) > MAX_KEY_TEXT or "\n" in text or "\r" in text:
        raise InvalidInput(f"Give one key at a time, on one line. {HOW}")
    key_type, _, rest = text.partition(" ")
    blob_text, _, comment = rest.strip().partition(" ")
    label = _label(comment.strip(), text)
    if key_type not in KEY_TYPES:
        raise InvalidInput(_type_refusal(key_type, label))
    blob = _blob(blob_text, label)
    bits = _checked_bits(key_type, f"{key_type} {blob_text}", label)
    fingerprint = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return ParsedKey(key_type, bits, f"{key_type} {blob_text}", fingerprint, comment.strip())


def _label(comment: str, text: str) -> str:
    shown = comment or text[:30] + ("…" if len(text) > 30 else "")
    return "".join(c for c in shown if c.isprintable())[:60]


def _type_refusal(key_type: str, label: str) -> str:
    if key_type == "ssh-dss":
        return (f"Key '{label}' is a DSA key, which OpenSSH no longer accepts. Make an Ed25519 "
                "key with ssh-keygen -t ed25519 and paste its .pub file.")
    if "=" in key_type or "," in key_type or key_type.startswith('"'):
        return (f"Key '{label}' starts with options ({key_type[:40]}): paste the key alone, "
                "starting with its type (ssh-ed25519, ssh-rsa, ecdsa-sha2-…).")
    return (f"Key '{label}' has the unknown type '{key_type[:40]}'. Accepted types: "
            f"{', '.join(KEY_TYPES)}. {HOW}")


def _blob(blob_text: str, label: str) -> bytes:
    try:
        return base64.b64decode(blob_text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"Key '{label}' is damaged: its middle part is not base64. "
                           f"{HOW}") from None


def _checked_bits(key_type: str, line: str, label: str) -> int:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            key = load_ssh_public_key(line.encode())
    except (ValueError, UnsupportedAlgorithm):
        raise InvalidInput(f"Key '{label}' is not a valid {key_type} key (damaged or "
                           f"cut short when copied). {HOW}") from None
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < MIN_RSA_BITS:
            raise InvalidInput(
                f"Key '{label}' is an RSA key of {key.key_size} bits, too weak: RSA keys need "
                f"at least {MIN_RSA_BITS} bits. Make an Ed25519 key with ssh-keygen -t ed25519.")
        return key.key_size
    if isinstance(key, ec.EllipticCurvePublicKey):
        return key.curve.key_size
    return 256


def keys_of(db: Session, user: User) -> list[SshKey]:
    """Return the user's SSH keys, oldest first. Raises nothing."""
    return list(db.scalars(select(SshKey).where(SshKey.user_id == user.id)
                           .order_by(SshKey.created_at, SshKey.id)))


def add_key(db: Session, user: User, text: str, name: str = "") -> SshKey:
    """Check ``text`` (one public key) and keep it on the user's profile; return the row.

    ``name`` defaults to the key's comment, else its type. Raises InvalidInput (see
    :func:`parse_public_key`; a name too long or not printable) or Conflict (the user already
    has this key, or as many keys as allowed).
    """
    parsed = parse_public_key(text)
    name = (name.strip() or parsed.comment or parsed.key_type)[:MAX_NAME + 1]
    if len(name) > MAX_NAME or not name.isprintable():
        raise InvalidInput(f"Give the key a name of at most {MAX_NAME} printable characters.")
    same = db.scalar(select(SshKey).where(SshKey.user_id == user.id,
                                          SshKey.fingerprint == parsed.fingerprint))
    if same is not None:
        raise Conflict(f"Key '{name}' is already on your profile, as '{same.name}' "
                       f"({parsed.fingerprint}).", f"{user.username}: duplicate ssh key")
    count = db.scalar(select(func.count()).select_from(SshKey).where(SshKey.user_id == user.id))
    if (count or 0) >= MAX_KEYS:
        raise Conflict(f"You have {MAX_KEYS} SSH keys, the most allowed: remove one first.",
                       f"{user.username}: ssh key cap")
    row = SshKey(user_id=user.id, name=name, key_type=parsed.key_type, bits=parsed.bits,
                 public_key=parsed.public_key, fingerprint=parsed.fingerprint)
    db.add(row)
    db.flush()
    record(db, "ssh_key.add", actor=user.username, target=f"ssh key {row.id}",
           detail=f"{name}, {parsed.fingerprint}")
    return row


def remove_key(db: Session, user: User, key_id: int) -> SshKey:
    """Remove one of the user's keys (machines launched later no longer get it); return it.

    Raises NotFound alike for a key that does not exist and one of someone else.
    """
    row = db.get(SshKey, key_id)
    if row is None or row.user_id != user.id:
        raise NotFound("No such SSH key on your profile.",
                       f"ssh key {key_id} is not {user.username}'s")
    db.delete(row)
    db.flush()
    record(db, "ssh_key.remove", actor=user.username, target=f"ssh key {key_id}",
           detail=f"{row.name}, {row.fingerprint}")
    return row


def authorized_keys(db: Session, user: User) -> str:
    """Return the user's keys as an authorized_keys file ("" without keys). Raises nothing."""
    return "".join(f"{key.authorized_keys_line}\n" for key in keys_of(db, user))
