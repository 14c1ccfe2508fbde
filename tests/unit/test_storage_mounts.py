"""The mount each storage backend gives a machine, as cloud-init writes it, and the admin guide."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from daaas.contextualisation import Mount, context_from_parts, render_user_data
from daaas.portal.auth.models import User
from daaas.portal.config import load_settings
from daaas.portal.storage.backends import ExportStorage, LocalStorage, StorageBackend
from daaas.portal.storage.errors import StorageError
from daaas.portal.storage.service import backend
from tests.support.cloudinit import SITE, TOKEN, fstab, validate_with_cloudinit
from tests.support.environments import make_environment

ROOT = Path(__file__).resolve().parents[2]
ALICE = User(username="alice", uid=20001, gid=20001)


def settings(tmp_path: Path, **storage: Any) -> Any:
    return load_settings({"var_dir": str(tmp_path / "var"), **storage}, environ={})


def export(tmp_path: Path, **more: Any) -> StorageBackend:
    (tmp_path / "home").mkdir(exist_ok=True)
    return backend(settings(tmp_path, storage_backend="nfs",
                            storage_portal_root_template=f"{tmp_path}/home/{{username}}", **more))


NFS_LINE = ("nfs.example.org:/export/home/alice /home/alice/storage nfs "
            "rw,vers=4.2,_netdev,nofail 0 0")
CEPH_LINE = ("mon1,mon2:/volumes/users/alice /home/alice/storage ceph "
             "rw,name=daaas,secretfile=/etc/ceph/daaas.secret,_netdev,nofail 0 0")


def test_nfs_export_mount_line(tmp_path: Path) -> None:
    storage = export(tmp_path, storage_export="nfs.example.org:/export/home/{username}",
                     storage_mount_options="vers=4.2")
    assert isinstance(storage, ExportStorage)
    assert fstab(storage.machine_mount(ALICE, "m-1")) == NFS_LINE
    assert (tmp_path / "home" / "alice").is_dir()  # made on first need, on the portal side
    assert storage.secret_files(ALICE, "m-1", frozenset()) == []


def test_cephfs_export_mount_line_names_the_key_file_never_the_key(tmp_path: Path) -> None:
    key = tmp_path / "key"
    key.write_text("AQBsecret==\n")
    storage = export(tmp_path, storage_export="mon1,mon2:/volumes/users/{username}",
                     storage_fs_type="ceph", storage_ceph_client="daaas",
                     storage_ceph_key_file=str(key))
    assert fstab(storage.machine_mount(ALICE, "m-1")) == CEPH_LINE
    assert storage.secret_files(ALICE, "m-1", frozenset()) == [
        {"path": "/etc/ceph/daaas.secret", "content": "AQBsecret==\n", "mode": "0600",
         "owner": "root"}]


def test_local_storage_gives_cloud_machines_no_mount(tmp_path: Path) -> None:
    storage = backend(settings(tmp_path))
    assert isinstance(storage, LocalStorage)
    assert storage.machine_mount(ALICE, "m-1") is None
    area = storage.area(ALICE)
    assert area.path == tmp_path / "var" / "storage" / "alice" and area.path.is_dir()
    assert (area.used_bytes, area.quota_bytes) == (0, 100 * 1024**3)


@pytest.mark.parametrize("missing", [
    {"storage_export": "nfs.example.org:/export/home"},  # no {username}
    {"storage_export": "mon1:/volumes/users/{username}", "storage_fs_type": "ceph"},
])
def test_an_incomplete_export_configuration_is_named(tmp_path: Path,
                                                     missing: dict[str, str]) -> None:
    with pytest.raises(StorageError) as error:
        export(tmp_path, **missing)
    assert "administrators" in error.value.user_message
    assert "storage_" in error.value.log_message


def test_mount_lines_pass_the_real_cloudinit_schema(tmp_path: Path,
                                                    cloudinit_python: str) -> None:
    nfs = export(tmp_path, storage_export="nfs.example.org:/export/home/{username}")
    ceph = Mount(kind="cephfs", source="192.0.2.11:6789,192.0.2.12:6789:/volumes/_nogroup/x/y",
                 target="/home/alice/storage", purpose="storage",
                 options=("name=daaas-alice", "secretfile=/etc/ceph/daaas-alice.secret"))
    for mount in (nfs.machine_mount(ALICE, "m-1"), ceph):
        ctx = context_from_parts({"username": "alice", "uid": 20001, "gid": 20001}, "m-1",
                                 make_environment(), SITE, bootstrap_token=TOKEN,
                                 mounts=[mount] if mount else [])
        validate_with_cloudinit(cloudinit_python, render_user_data(ctx))


def test_the_admin_guide_shows_the_lines_each_backend_produces() -> None:
    guide = (ROOT / "docs" / "admin.md").read_text(encoding="utf-8")
    section = guide.split("## User storage", 1)[1].split("\n## ", 1)[0]
    for line in (NFS_LINE, CEPH_LINE, "/home/alice/storage ceph "
                 "rw,name=daaas-alice,secretfile=/etc/ceph/daaas-alice.secret,_netdev,nofail"):
        assert line in section, line
