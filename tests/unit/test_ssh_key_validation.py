"""SSH public keys as users paste them: parsed by cryptography, refused with the key named."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa

from daaas.portal.errors import InvalidInput
from daaas.portal.sshkeys.service import parse_public_key


def openssh(key: object, comment: str = "") -> str:
    public = key.public_key()  # type: ignore[attr-defined]
    line = public.public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}".strip()


def test_an_ed25519_key_is_parsed_with_its_fingerprint_and_comment() -> None:
    line = openssh(ed25519.Ed25519PrivateKey.generate(), "alice@laptop")
    parsed = parse_public_key(f"  {line}\n")
    blob = base64.b64decode(line.split()[1])
    expected = "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    assert (parsed.key_type, parsed.bits, parsed.comment) == ("ssh-ed25519", 256, "alice@laptop")
    assert parsed.fingerprint == expected
    assert parsed.public_key == " ".join(line.split()[:2])


def test_rsa_of_2048_bits_and_ecdsa_are_accepted() -> None:
    assert parse_public_key(openssh(rsa.generate_private_key(65537, 2048))).bits == 2048
    parsed = parse_public_key(openssh(ec.generate_private_key(ec.SECP384R1()), "work"))
    assert (parsed.key_type, parsed.bits) == ("ecdsa-sha2-nistp384", 384)


def refusal(text: str) -> str:
    with pytest.raises(InvalidInput) as caught:
        parse_public_key(text)
    return caught.value.user_message


def test_weak_rsa_is_refused_naming_the_key_and_its_size() -> None:
    message = refusal(openssh(rsa.generate_private_key(65537, 1024), "old@box"))
    assert "Key 'old@box'" in message and "1024 bits" in message and "2048" in message


def test_a_private_key_is_refused_without_echoing_it() -> None:
    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        ser.Encoding.PEM, ser.PrivateFormat.OpenSSH, ser.NoEncryption()).decode()
    message = refusal(pem)
    assert "private key" in message and ".pub" in message
    assert pem.splitlines()[1] not in message


def test_dsa_and_unknown_types_are_refused_by_name() -> None:
    dss = openssh(dsa.generate_private_key(1024), "ancient")
    assert "DSA" in refusal(dss) and "'ancient'" in refusal(dss)
    message = refusal("ssh-foo AAAAB3NzaC1yc2E= me@x")
    assert "unknown type 'ssh-foo'" in message and "Key 'me@x'" in message


def test_a_damaged_or_mislabelled_key_is_refused() -> None:
    line = openssh(ed25519.Ed25519PrivateKey.generate(), "cut")
    kind, blob, _ = line.split()
    assert "not a valid ssh-ed25519 key" in refusal(f"{kind} {blob[:-12]} cut")
    assert "not base64" in refusal(f"{kind} ***{blob} cut")
    assert "not a valid ssh-rsa key" in refusal(f"ssh-rsa {blob} cut")


def test_options_several_lines_and_nothing_are_refused() -> None:
    line = openssh(ed25519.Ed25519PrivateKey.generate(), "me")
    assert "options" in refusal(f'command="/bin/sh" {line}')
    assert "one key at a time" in refusal(f"{line}\n{line}")
    assert "No key given" in refusal("   ")
