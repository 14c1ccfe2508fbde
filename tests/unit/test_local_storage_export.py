"""The ``local`` backend on cloud VMs: the NFS mount of the user's own folder
(``local_storage_export``), and the per-user exports ``daaas storage exports`` writes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from daaas.portal.auth.models import User
from daaas.portal.config import load_settings
from daaas.portal.machines.naming import storage_on_desktop
from daaas.portal.storage.backends import NOT_EXPORTED, LocalStorage, local_export_source
from daaas.portal.storage.errors import StorageError
from daaas.portal.storage.exports import (
    ganesha_exports,
    kernel_exports,
    pseudo_path,
    user_exports,
)
from daaas.portal.storage.service import backend, no_mount_reason
from tests.support.cloudinit import fstab

ALICE = User(id=1, username="alice", uid=20001, gid=20001)
BOB = User(id=2, username="bob", uid=20002, gid=20002)
TEMPLATE = "10.0.2.100:/storage/{username}"


def settings(tmp_path: Path, **more: Any) -> Any:
    return load_settings({"var_dir": str(tmp_path / "var"), **more}, environ={})


def test_cloud_machines_mount_the_users_own_folder_from_this_host(tmp_path: Path) -> None:
    storage = backend(settings(tmp_path, local_storage_export=TEMPLATE,
                               storage_mount_options="vers=4.1,port=2049"))
    assert isinstance(storage, LocalStorage)
    assert fstab(storage.machine_mount(ALICE, "m-1")) == (
        "10.0.2.100:/storage/alice /home/alice/storage nfs "
        "rw,vers=4.1,port=2049,_netdev,nofail 0 0")
    folder = tmp_path / "var" / "storage" / "alice"
    assert folder.is_dir()  # made on first need, so the export has something to serve
    if os.geteuid() == 0:
        assert (folder.stat().st_uid, folder.stat().st_gid) == (20001, 20001)
    assert storage.no_mount_reason() == ""


def test_without_the_setting_cloud_machines_get_no_storage_and_a_reason(tmp_path: Path) -> None:
    configured = settings(tmp_path)
    assert backend(configured).machine_mount(ALICE, "m-1") is None
    assert no_mount_reason(configured) == NOT_EXPORTED
    assert "not mounted" in NOT_EXPORTED and "My Data" in NOT_EXPORTED
    exported = settings(tmp_path, local_storage_export=TEMPLATE)
    assert no_mount_reason(exported) == ""
    nfs = settings(tmp_path, storage_backend="nfs", storage_export="s:/home/{username}",
                   storage_portal_root_template=f"{tmp_path}/{{username}}")
    assert no_mount_reason(nfs) == ""


NAMES = ["alice", "alice2", "al", "a.b", "_svc", "bob-1", "x" * 32]


@pytest.mark.parametrize("username", NAMES)
def test_a_machine_is_told_only_its_owners_folder(tmp_path: Path, username: str) -> None:
    configured = settings(tmp_path, local_storage_export=TEMPLATE)
    source = local_export_source(configured, username)
    server, path = source.split(":", 1)
    assert server == "10.0.2.100"
    assert path == f"/storage/{username}" == pseudo_path(configured, username)
    others = [name for name in NAMES if name != username]
    # No other user's folder is the path, lies above it or below it.
    for other in others:
        theirs = local_export_source(configured, other).split(":", 1)[1]
        assert theirs != path
        assert not path.startswith(theirs + "/") and not theirs.startswith(path + "/")
    storage = backend(configured)
    mount = storage.machine_mount(User(id=9, username=username, uid=20009, gid=20009), "m-1")
    assert mount is not None and mount.source == source and not mount.read_only


@pytest.mark.parametrize("template", [
    "10.0.2.100:/storage",                       # no {username}
    "10.0.2.100:/storage/{username}/data",       # {username} not the last folder
    "10.0.2.100:/{username}/{username}",         # twice
    "10.0.2.100:/storage/{uid}",                 # another field
    "/storage/{username}",                       # no server
    "10.0.2.100:/storage/u-{username}",          # a prefix would let names run together
    "10.0.2.100:/storage/../{username}",         # a path that climbs
])
def test_a_malformed_export_template_is_refused(tmp_path: Path, template: str) -> None:
    with pytest.raises(StorageError) as error:
        backend(settings(tmp_path, local_storage_export=template))
    assert "administrators" in error.value.user_message
    assert "local_storage_export" in error.value.log_message


def test_user_exports_one_per_existing_folder_squashed_to_its_owner(tmp_path: Path) -> None:
    configured = settings(tmp_path, local_storage_export=TEMPLATE)
    backend(configured).area(ALICE)  # alice has a folder, bob has none yet
    [only] = user_exports(configured, [BOB, ALICE])
    folder = tmp_path / "var" / "storage" / "alice"
    assert (only.username, only.path, only.pseudo, only.export_id) == (
        "alice", folder, "/storage/alice", 10001)
    assert (only.uid, only.gid) == (folder.stat().st_uid, folder.stat().st_gid)
    both = user_exports(configured, [BOB, ALICE], create=True)
    assert [e.username for e in both] == ["alice", "bob"]
    assert (tmp_path / "var" / "storage" / "bob").is_dir()
    with pytest.raises(StorageError):
        user_exports(settings(tmp_path), [ALICE])  # not exported: nothing to write


def test_ganesha_and_kernel_exports(tmp_path: Path) -> None:
    configured = settings(tmp_path, local_storage_export=TEMPLATE)
    backend(configured).area(ALICE)
    exports = user_exports(configured, [ALICE])
    uid, gid = exports[0].uid, exports[0].gid
    folder = tmp_path / "var" / "storage" / "alice"
    assert ganesha_exports(exports, ["10.0.0.0/16", "192.0.2.7"]).split("\n", 1)[1] == (
        f"EXPORT {{\n  Export_Id = 10001;\n  Path = \"{folder}\";\n"
        "  Pseudo = \"/storage/alice\";\n  Protocols = 4;\n  Transports = TCP;\n"
        "  Access_Type = None;\n  Squash = All_Squash;\n"
        f"  Anonymous_Uid = {uid};\n  Anonymous_Gid = {gid};\n  SecType = sys;\n"
        "  PrivilegedPort = true;\n"
        "  CLIENT { Clients = 10.0.0.0/16, 192.0.2.7; Access_Type = RW; }\n"
        "  FSAL { Name = VFS; }\n}\n")
    assert kernel_exports(exports, ["10.0.0.0/16"]).split("\n", 1)[1] == (
        f"{folder} 10.0.0.0/16(rw,sync,no_subtree_check,secure,all_squash,anonuid={uid},"
        f"anongid={gid},sec=sys)\n")
    # QEMU's user network: its forwards connect from any port, so the check is dropped.
    assert "PrivilegedPort = false;" in ganesha_exports(exports, ["127.0.0.1"],
                                                        insecure_ports=True)
    assert "(rw,sync,no_subtree_check,insecure," in kernel_exports(exports, ["127.0.0.1"],
                                                                  insecure_ports=True)


@pytest.mark.parametrize("clients", [[], ["*"], ["10.0.0.0/16", "everyone"]])
def test_exports_are_never_open_to_anyone(tmp_path: Path, clients: list[str]) -> None:
    configured = settings(tmp_path, local_storage_export=TEMPLATE)
    backend(configured).area(ALICE)
    exports = user_exports(configured, [ALICE])
    for write in (ganesha_exports, kernel_exports):
        with pytest.raises(StorageError):
            write(exports, clients)


def test_pages_say_cloud_desktops_have_the_storage_when_exported(tmp_path: Path) -> None:
    for provider in ("openstack", "qemu"):
        assert storage_on_desktop(settings(tmp_path), provider) is None
        exported = settings(tmp_path, local_storage_export=TEMPLATE)
        assert storage_on_desktop(exported, provider) == "~/storage"


def test_an_ipv6_server(tmp_path: Path) -> None:
    configured = settings(tmp_path, local_storage_export="[fd00::1]:/storage/{username}")
    assert local_export_source(configured, "alice") == "[fd00::1]:/storage/alice"
    assert pseudo_path(configured, "alice") == "/storage/alice"
    mount = backend(configured).machine_mount(ALICE, "m-1")
    assert mount is not None and mount.source == "[fd00::1]:/storage/alice"
