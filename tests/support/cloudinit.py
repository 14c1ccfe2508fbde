"""The real cloud-init schema validator (Debian's python3 with cloudinit) and shared contexts."""

from __future__ import annotations

import base64
import gzip
import json
import os
import subprocess
from typing import Any

import pytest
import yaml

from daaas.contextualisation import (
    Context,
    Mount,
    context_from_parts,
    render_user_data,
)
from tests.support.environments import make_environment

FAST_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
PEM = ("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\n"
       "-----END PUBLIC KEY-----")
TOKEN = "tok_" + "Z9y8X7w6" * 4


SITE = {
    "callback_url": "https://portal.example.org",
    "cvmfs": {"http_proxy": "http://squid.example.org:3128;DIRECT", "quota_limit_mb": 20000,
              "server_urls": {"example.org": ["http://s1.example.org/cvmfs/@fqrn@"]},
              "public_keys": {"example.org": {"example.org.pub": PEM}}},
    "hpc": {"cluster_name": "scarf", "slurmctld_host": "slurm.example.org:6817",
            "slurmrestd_url": "https://slurm.example.org:6820"},
}


def loaded(ctx: Context) -> dict[str, Any]:
    text = decoded(render_user_data(ctx))
    assert text.startswith("#cloud-config\n")
    return parse(text)


def fstab(mount: Mount | None) -> str:
    """Return the fstab line cloud-init writes for one mount of alice's machine m-1."""
    assert mount is not None
    ctx = context_from_parts({"username": "alice", "uid": 20001, "gid": 20001}, "m-1",
                             make_environment(), SITE, bootstrap_token=TOKEN, mounts=[mount])
    [line] = [entry for entry in loaded(ctx)["mounts"] if entry[1] == mount.target]
    return " ".join(str(field) for field in line)


def require_cloudinit_python() -> str:
    """Debian's python3 with the cloudinit module; skip (fail in CI) without it."""
    usable = os.path.exists(DEBIAN_PYTHON) and subprocess.run(
        [DEBIAN_PYTHON, "-c", "import cloudinit.config.schema, yaml"], capture_output=True,
    ).returncode == 0
    if not usable:
        reason = f"{DEBIAN_PYTHON} lacks the cloudinit module (Debian package cloud-init)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must validate user-data against the real schema")
        pytest.skip(reason)
    return DEBIAN_PYTHON


def validate_with_cloudinit(python: str, *user_data: bytes) -> None:
    blobs = json.dumps([base64.b64encode(data).decode() for data in user_data]).encode()
    done = subprocess.run([python, "-c", SCHEMA_CHECK], input=blobs, capture_output=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr.decode() + done.stdout.decode()
    assert done.stdout.strip() == b"valid"


DEBIAN_PYTHON = os.environ.get("DAAAS_TEST_CLOUDINIT_PYTHON", "/usr/bin/python3")


SCHEMA_CHECK = r"""
import base64, json, sys
import yaml
from cloudinit import helpers, user_data
from cloudinit.config.schema import get_schema, validate_cloudconfig_schema

schema = get_schema()
known = set(schema.get("properties", {}))
for ref in schema.get("allOf", []):
    known |= set(schema["$defs"][ref["$ref"].rsplit("/", 1)[1]].get("properties", {}))
for number, blob in enumerate(json.load(sys.stdin)):
    data = base64.b64decode(blob)
    message = user_data.UserDataProcessor(helpers.Paths({})).process(data)  # ungzips as at boot
    parts = [p for p in message.walk() if p.get_content_type() == "text/cloud-config"]
    if len(parts) != 1:
        sys.exit("#%d: expected one text/cloud-config part, got %r"
                 % (number, [p.get_content_type() for p in message.walk()]))
    config = yaml.safe_load(parts[0].get_payload(decode=True))
    validate_cloudconfig_schema(config, schema, strict=True)
    unknown = sorted(set(config) - known)
    if unknown:
        sys.exit("#%d: top-level keys unknown to cloud-init: %s" % (number, unknown))
print("valid")
"""




def decoded(user_data: bytes) -> str:
    if user_data[:2] == b"\x1f\x8b":
        user_data = gzip.decompress(user_data)
    return user_data.decode("utf-8")


def parse(text: str) -> dict[str, Any]:
    config: dict[str, Any] = yaml.load(text, Loader=FAST_SAFE_LOADER)
    return config
