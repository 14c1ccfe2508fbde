"""Render a Context as cloud-init user-data (``#cloud-config``) that fits Nova's limit.

The configuration is built as Python data and dumped with PyYAML's safe dumper, so no string from
a user or the catalogue can change the YAML's structure. Only services and commands the image
already has are used: no ``packages``, no ``package_update``.
"""

from __future__ import annotations

import gzip
from typing import Any

import yaml

from daaas.contextualisation.bootstrap import AGENT_PATH
from daaas.contextualisation.context import Context
from daaas.contextualisation.errors import UserDataTooLarge
from daaas.contextualisation.files import File, one_line, session_files
from daaas.contextualisation.mounts import FSTYPES

NOVA_USER_DATA_LIMIT = 65535
_GROUPADD = 'getent group "$1" >/dev/null || groupadd --gid "$2" "$1"'


def build_cloud_config(ctx: Context) -> dict[str, Any]:
    """Return the cloud-config as a dictionary (for inspection and tests). Raises nothing."""
    files = session_files(ctx)
    config: dict[str, Any] = {
        "bootcmd": [["sh", "-c", _GROUPADD, "daaas-groupadd", ctx.user.group, str(ctx.user.gid)]],
        "users": [_user(ctx)],
        "disable_root": True,
        "ssh_pwauth": False,
        "write_files": [_write_file(f) for f in files],
    }
    mounts = [[m.source, m.target, FSTYPES[m.kind], m.fstab_options, "0", "0"]
              for m in ctx.mounts] + cvmfs_fstab(ctx)
    if mounts:
        config["mounts"] = mounts
    config["runcmd"] = [[AGENT_PATH]]
    return config


def cvmfs_fstab(ctx: Context) -> list[list[str]]:
    """Return fstab lines for the session's repositories when the site mounts CVMFS by fstab
    (the CVMFS documentation's form: ``<repo> /cvmfs/<repo> cvmfs defaults,_netdev,nodev``);
    none with autofs. Raises nothing."""
    if ctx.cvmfs.mount != "fstab":
        return []
    return [[repo, f"/cvmfs/{repo}", "cvmfs", "defaults,_netdev,nodev", "0", "0"]
            for repo in ctx.cvmfs_repositories]


def dump_cloud_config(config: dict[str, Any]) -> str:
    """Return ``#cloud-config`` text for a configuration dictionary. Raises yaml.YAMLError for
    values that are not plain data."""
    body = yaml.dump(config, Dumper=_DUMPER, sort_keys=False, allow_unicode=True, width=4096)
    return "#cloud-config\n" + body


def render_user_data(ctx: Context) -> bytes:
    """Return user-data for Nova: plain ``#cloud-config``, or gzip-compressed if that is too big.

    Raises UserDataTooLarge (naming the environment) when even the compressed form exceeds
    65,535 bytes after base64 encoding.
    """
    plain = dump_cloud_config(build_cloud_config(ctx)).encode("utf-8")
    if encoded_size(plain) <= NOVA_USER_DATA_LIMIT:
        return plain
    compressed = gzip.compress(plain, compresslevel=9, mtime=0)
    if encoded_size(compressed) <= NOVA_USER_DATA_LIMIT:
        return compressed
    raise UserDataTooLarge(ctx.environment_name, encoded_size(compressed), NOVA_USER_DATA_LIMIT,
                           len(ctx.launchers))


def encoded_size(data: bytes) -> int:
    """Return the length of ``data`` after base64 encoding, as Nova measures it. Raises nothing."""
    return 4 * ((len(data) + 2) // 3)


def _user(ctx: Context) -> dict[str, Any]:
    user = ctx.user
    entry: dict[str, Any] = {
        "name": user.username,
        "uid": user.uid,
        "primary_group": user.group,
        "no_user_group": True,
        "homedir": user.home,
        "shell": "/bin/bash",
        "lock_passwd": True,
    }
    if user.full_name.strip():
        entry["gecos"] = one_line(user.full_name).replace(":", " ").replace(",", " ")
    if user.groups:
        entry["groups"] = list(user.groups)
    if user.ssh_public_keys:
        entry["ssh_authorized_keys"] = list(user.ssh_public_keys)
    if user.sudo:
        entry["sudo"] = "ALL=(ALL) NOPASSWD:ALL"
    return entry


def _write_file(file: File) -> dict[str, Any]:
    entry: dict[str, Any] = {"path": file.path, "content": file.content,
                             "permissions": file.permissions, "owner": file.owner}
    if file.defer:
        entry["defer"] = True
    return entry


def _literal_blocks(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _make_dumper() -> type[yaml.SafeDumper]:
    """Return a safe dumper (libyaml's when present) writing multi-line strings as literal
    blocks; PyYAML falls back to a quoted style whenever a block could not hold the value."""
    base = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    dumper: type[yaml.SafeDumper] = type("LiteralBlockDumper", (base,), {})
    dumper.add_representer(str, _literal_blocks)
    return dumper


_DUMPER = _make_dumper()
