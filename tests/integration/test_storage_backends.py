"""Persistent user storage on cloud machines: Manila shares (through real openstacksdk against
a Manila API on 127.0.0.1, tests/integration/manila_fake.py) and an NFS/CephFS export (real
folders), with the real app, database, reconciler and bootstrap exchange.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from daaas.contextualisation import Mount
from daaas.portal import create_app
from daaas.portal.auth.models import User
from daaas.portal.auth.service import get_user
from daaas.portal.config import ConfigError
from daaas.portal.db import unit_of_work
from daaas.portal.machines import service
from daaas.portal.observers import Observers
from daaas.portal.providers.openstack.cloud import machine_tag
from daaas.portal.storage import usage
from daaas.portal.storage.backends import (
    STORAGE_BACKENDS,
    StorageArea,
    StorageBackend,
    ensure_folder,
)
from daaas.portal.storage.manila_errors import QUOTA
from daaas.portal.storage.service import storage_area
from tests.integration.context_support import (
    Cloud,
    cloud_config,
    cloudinit_python,
    context_row,
    machine_row,
)
from tests.integration.manila_fake import CEPH_MONITORS, NFS_SERVER, ManilaState, manila_cloud
from tests.support.cloudinit import validate_with_cloudinit
from tests.support.machines import launch

TARGET = "/home/scientist/storage"
GIB = 1024**3


@pytest.fixture
def manila(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ManilaState]:
    with manila_cloud(tmp_path) as (state, clouds):
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))  # openstacksdk's own variable
        yield state


def make_app(settings_override: dict[str, Any], **storage: Any) -> Iterator[Flask]:
    application = create_app({**settings_override, "storage_quota_gb": 20, **storage})
    yield application
    application.extensions["daaas"].engine.dispose()


@pytest.fixture
def cephfs_app(settings_override: dict[str, Any], manila: ManilaState) -> Iterator[Flask]:
    yield from make_app(settings_override, storage_backend="manila", storage_manila_cloud="fake",
                        storage_manila_share_type="cephfstype")


@pytest.fixture
def nfs_share_app(settings_override: dict[str, Any], manila: ManilaState) -> Iterator[Flask]:
    yield from make_app(settings_override, storage_backend="manila", storage_manila_cloud="fake",
                        storage_manila_protocol="NFS", storage_mount_options="vers=4.2")


def exchange(client: FlaskClient, machine_id: str, token: str) -> Any:
    return client.post(f"/api/v1/context/{machine_id}/bootstrap", json={"token": token})


def storage_line(cloud: Cloud, machine_id: str) -> list[str]:
    user_data = cloud.provider.specs[machine_id].user_data
    assert user_data is not None
    lines = [line for line in cloud_config(user_data).get("mounts", []) if line[1] == TARGET]
    assert len(lines) == 1, cloud_config(user_data).get("mounts")
    return [str(field) for field in lines[0]]


def delete(app: Flask, cloud: Cloud, machine_id: str) -> None:
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        service.request_delete(db, get_user(db, "scientist"), machine_id)
    cloud.cycle()
    assert machine_row(app, machine_id).state == "deleted"


def scientist_area(app: Flask) -> Any:
    rt = app.extensions["daaas"]
    with rt.session_factory() as db:
        return storage_area(rt.settings, get_user(db, "scientist"))


# --- Manila, CephFS --------------------------------------------------------------------------

def test_first_launch_creates_the_share_and_the_second_reuses_it(
        cephfs_app: Flask, manila: ManilaState) -> None:
    cloud = Cloud(cephfs_app)
    first, _ = cloud.launch()
    assert len(manila.shares) == 1
    share = next(iter(manila.shares.values()))
    assert (share["name"], share["size"], share["share_proto"], share["status"]) == (
        "daaas-storage-scientist", 20, "CEPHFS", "available")
    assert share["share_type"] == "cephfstype"
    assert share["metadata"] == {"daaas_owner": "scientist", "daaas_portal": "daaas"}
    [rule] = manila.rules_of(share["id"])
    assert (rule["access_type"], rule["access_to"], rule["access_level"]) == (
        "cephx", "daaas-scientist", "rw")

    line = storage_line(cloud, first)
    export = next(e["path"] for e in share["_exports"] if not e["is_admin_only"])
    assert export.startswith(CEPH_MONITORS + ":/volumes/")
    assert line == [export, TARGET, "ceph", "rw,name=daaas-scientist,"
                    "secretfile=/etc/ceph/daaas-scientist.secret,_netdev,nofail", "0", "0"]
    assert TARGET in cloud.document(first)["mounts"]  # the agent mounts it once it has the key

    second, _ = cloud.launch()
    assert len(manila.shares) == 1 and len(manila.rules_of(share["id"])) == 1
    assert storage_line(cloud, second) == line
    assert [m for m, p in manila.requests if p.startswith("/v2/shares") and m == "POST"
            and not p.endswith("/action")] == ["POST"]


def test_the_cephx_key_travels_only_through_the_exchange_and_once(
        cephfs_app: Flask, manila: ManilaState) -> None:
    client = cephfs_app.test_client()
    cloud = Cloud(cephfs_app)
    machine_id, token = cloud.launch()
    answer = exchange(client, machine_id, token)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    [rule] = manila.rules.values()
    key = rule["access_key"]
    assert key
    files = answer.get_json()["files"]
    assert files == [{"path": "/etc/ceph/daaas-scientist.secret", "content": key + "\n",
                      "mode": "0600", "owner": "root"}]

    user_data = cloud.provider.specs[machine_id].user_data
    assert user_data is not None and key.encode() not in user_data
    assert key not in json.dumps(cloud_config(user_data))
    assert key not in " ".join(str(v) for v in context_row(cephfs_app, machine_id).values())
    again = exchange(client, machine_id, token)
    assert again.status_code == 403 and key not in again.get_data(as_text=True)


def test_user_data_with_the_share_passes_the_real_cloudinit_schema(cephfs_app: Flask) -> None:
    cloud = Cloud(cephfs_app)
    machine_id, _ = cloud.launch()
    user_data = cloud.provider.specs[machine_id].user_data
    assert user_data is not None
    validate_with_cloudinit(cloudinit_python(), user_data)


def test_deleting_a_machine_leaves_the_share_and_its_access(
        cephfs_app: Flask, manila: ManilaState) -> None:
    cloud = Cloud(cephfs_app)
    machine_id, _ = cloud.launch()
    delete(cephfs_app, cloud, machine_id)
    [share] = manila.shares.values()
    assert share["status"] == "available" and len(manila.rules_of(share["id"])) == 1
    assert not [p for m, p in manila.requests if m == "DELETE"]
    cloud.launch()
    assert list(manila.shares.values()) == [share]


def test_a_share_quota_error_fails_the_machine_with_a_message_a_person_can_act_on(
        settings_override: dict[str, Any], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    with manila_cloud(tmp_path, max_shares=0) as (manila, clouds):
        monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))
        for app in make_app(settings_override, storage_backend="manila",
                            storage_manila_cloud="fake"):
            cloud = Cloud(app)
            machine_id = launch(app)
            cloud.cycle()
            failed = machine_row(app, machine_id)
            assert failed.state == "error" and failed.error_reason == QUOTA
            assert "quota" in QUOTA and "support" in QUOTA
            assert manila.shares == {} and machine_id not in cloud.provider.specs


def test_manila_unreachable_postpones_the_launch_and_the_exchange(
        cephfs_app: Flask, manila: ManilaState) -> None:
    client = cephfs_app.test_client()
    cloud = Cloud(cephfs_app)
    manila.unavailable = True
    waiting = launch(cephfs_app)
    cloud.cycle()
    assert machine_row(cephfs_app, waiting).state == "requested"  # retried, not failed
    manila.unavailable = False
    cloud.cycle()
    assert machine_row(cephfs_app, waiting).state == "provisioning"

    token = cloud.document(waiting)["token"]
    manila.unavailable = True
    refused = exchange(client, waiting, token)
    assert refused.status_code == 503  # the agent retries 5xx
    assert "storage" in refused.get_json()["error"]["message"].lower()
    assert context_row(cephfs_app, waiting)["used_at"] is None  # the token still works
    manila.unavailable = False
    assert exchange(client, waiting, token).status_code == 200


def test_the_share_size_is_the_quota_shown(cephfs_app: Flask, manila: ManilaState) -> None:
    before = scientist_area(cephfs_app)
    assert before.quota_bytes == 20 * GIB and manila.shares == {}  # My Data creates no share
    Cloud(cephfs_app).launch()
    next(iter(manila.shares.values()))["size"] = 50  # an administrator extended the share
    asked = len(manila.requests)
    assert scientist_area(cephfs_app).quota_bytes == 20 * GIB  # as last seen: Manila not asked
    assert len(manila.requests) == asked
    rt = cephfs_app.extensions["daaas"]
    Observers(rt.session_factory, rt.settings).run_due()  # the worker's look (one listing)
    assert [p for _, p in manila.requests[asked:] if p.startswith("/v2/shares")] == [
        "/v2/shares/detail"], manila.requests[asked:]
    area = scientist_area(cephfs_app)
    assert area.quota_bytes == 50 * GIB
    assert (area.used_known, area.on_portal, area.used_bytes) == (False, False, 0)


# --- Manila, NFS -------------------------------------------------------------------------------

def test_nfs_shares_grant_the_machines_fixed_ip_at_the_exchange(
        nfs_share_app: Flask, manila: ManilaState) -> None:
    client = nfs_share_app.test_client()
    cloud = Cloud(nfs_share_app)
    first, token = cloud.launch()
    [share] = manila.shares.values()
    assert share["share_proto"] == "NFS" and manila.rules_of(share["id"]) == []
    assert storage_line(cloud, first) == [f"{NFS_SERVER}:/shares/share-{share['id']}", TARGET,
                                          "nfs", "rw,vers=4.2,_netdev,nofail", "0", "0"]
    manila.add_server(machine_tag(first), "10.0.0.5")
    answer = exchange(client, first, token)
    assert answer.status_code == 200 and answer.get_json()["files"] == []
    [rule] = manila.rules_of(share["id"])
    assert (rule["access_type"], rule["access_to"], rule["access_level"], rule["metadata"]) == (
        "ip", "10.0.0.5", "rw", {"daaas_machine": first})

    delete(nfs_share_app, cloud, first)
    second, token = cloud.launch()
    manila.add_server(machine_tag(second), "10.0.0.5")  # the address came back to us ...
    manila.add_server(machine_tag(second) + "-x", "10.0.0.77")
    manila.servers[-1]["tags"].append(machine_tag(second))  # ... with a second interface
    assert exchange(client, second, token).status_code == 200
    rules = manila.rules_of(share["id"])  # the deleted machine's grant was revoked
    assert sorted((r["access_to"], r["metadata"]["daaas_machine"]) for r in rules) == [
        ("10.0.0.5", second), ("10.0.0.77", second)]
    assert len(manila.shares) == 1


def test_nfs_share_waits_for_the_machines_address(
        nfs_share_app: Flask, manila: ManilaState) -> None:
    client = nfs_share_app.test_client()
    cloud = Cloud(nfs_share_app)
    machine_id, token = cloud.launch()
    assert exchange(client, machine_id, token).status_code == 503  # Nova shows no address yet
    manila.add_server(machine_tag(machine_id), "10.0.0.8")
    assert exchange(client, machine_id, token).status_code == 200


# --- an existing NFS / CephFS export ---------------------------------------------------------

@pytest.fixture
def export_root(tmp_path: Path) -> Path:
    root = tmp_path / "export-home"  # what the portal host mounts at /mnt/home, say
    root.mkdir()
    return root


def export_app(settings_override: dict[str, Any], root: Path, **more: Any) -> Iterator[Flask]:
    yield from make_app(settings_override, storage_backend="nfs",
                        storage_export="nfs.example.org:/export/home/{username}",
                        storage_portal_root_template=f"{root}/{{username}}", **more)


def test_an_nfs_export_gets_a_folder_per_user_that_outlives_machines(
        settings_override: dict[str, Any], export_root: Path) -> None:
    for app in export_app(settings_override, export_root, storage_mount_options="vers=4.2,hard"):
        cloud = Cloud(app)
        assert not (export_root / "scientist").exists()
        first, _ = cloud.launch()
        folder = export_root / "scientist"
        assert folder.is_dir() and folder.stat().st_mode & 0o777 == 0o700
        if os.geteuid() == 0:
            with app.extensions["daaas"].session_factory() as db:
                user = get_user(db, "scientist")
                assert (folder.stat().st_uid, folder.stat().st_gid) == (user.uid, user.gid)
        assert storage_line(cloud, first) == [
            "nfs.example.org:/export/home/scientist", TARGET, "nfs",
            "rw,vers=4.2,hard,_netdev,nofail", "0", "0"]
        (folder / "results.txt").write_text("refined model R=0.19\n")
        delete(app, cloud, first)
        assert (folder / "results.txt").read_text() == "refined model R=0.19\n"
        second, _ = cloud.launch()
        assert storage_line(cloud, second)[0] == "nfs.example.org:/export/home/scientist"
        rt = app.extensions["daaas"]  # what a machine wrote counts once the kept figure ages
        with rt.session_factory() as db:
            usage.forget(rt.settings, get_user(db, "scientist"))
        area = scientist_area(app)
        assert area.path == folder and area.used_bytes == len("refined model R=0.19\n")
        assert area.quota_bytes == 20 * GIB and area.on_portal and area.used_known


def test_an_export_that_is_not_mounted_fails_the_launch_with_a_message(
        settings_override: dict[str, Any], tmp_path: Path) -> None:
    for app in export_app(settings_override, tmp_path / "not-mounted"):
        machine_id = launch(app)
        Cloud(app).cycle()
        failed = machine_row(app, machine_id)
        assert failed.state == "error" and "storage" in failed.error_reason
        assert not (tmp_path / "not-mounted").exists()  # never made: it would hide the mount


def test_a_cephfs_export_key_comes_from_the_exchange_only(
        settings_override: dict[str, Any], export_root: Path, tmp_path: Path) -> None:
    key_file = tmp_path / "client.daaas.key"
    key_file.write_text("AQBexampleCephKey0123456789abcdefghij==\n")
    key_file.chmod(0o600)
    for app in make_app(settings_override, storage_backend="nfs", storage_fs_type="ceph",
                        storage_export="mon1.example.org,mon2.example.org:/volumes/users/"
                                       "{username}",
                        storage_portal_root_template=f"{export_root}/{{username}}",
                        storage_ceph_client="daaas", storage_ceph_key_file=str(key_file)):
        cloud = Cloud(app)
        machine_id, token = cloud.launch()
        assert storage_line(cloud, machine_id) == [
            "mon1.example.org,mon2.example.org:/volumes/users/scientist", TARGET, "ceph",
            "rw,name=daaas,secretfile=/etc/ceph/daaas.secret,_netdev,nofail", "0", "0"]
        user_data = cloud.provider.specs[machine_id].user_data
        assert user_data is not None and b"AQBexampleCephKey" not in user_data
        answer = exchange(app.test_client(), machine_id, token).get_json()
        assert answer["files"] == [{"path": "/etc/ceph/daaas.secret", "mode": "0600",
                                    "owner": "root",
                                    "content": "AQBexampleCephKey0123456789abcdefghij==\n"}]


# --- A site's own backend, chosen by the setting ----------------------------------------------

class ScratchStorage(StorageBackend):
    """A test double for a site's own storage backend: a scratch server's export per user."""

    name = "scratch"

    def area(self, user: User) -> StorageArea:
        path = self.settings.var_path / "scratch" / user.username
        ensure_folder(path, user)
        return StorageArea(path=path, used_bytes=0, quota_bytes=self.quota_bytes())

    def machine_mount(self, user: User, machine_id: str) -> Mount | None:
        return Mount(kind="nfs", source=f"scratch.example.org:/{user.username}",
                     target=self.target(user), options=self.extra_options(), purpose="storage",
                     label="your storage")


def test_a_registered_storage_backend_is_chosen_by_the_setting(
        settings_override: dict[str, Any]) -> None:
    with STORAGE_BACKENDS.registered("scratch", ScratchStorage):
        for app in make_app(settings_override, storage_backend="scratch",
                            storage_mount_options="vers=4.2"):
            cloud = Cloud(app)
            machine_id, _ = cloud.launch()
            assert storage_line(cloud, machine_id)[:4] == [
                "scratch.example.org:/scientist", TARGET, "nfs", "rw,vers=4.2,_netdev,nofail"]
            assert scientist_area(app).path == Path(settings_override["var_dir"]).resolve() \
                / "scratch" / "scientist"


def test_an_unknown_storage_backend_stops_start_up(settings_override: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"'storage_backend'.*choose one of: local, manila, nfs"):
        create_app({**settings_override, "storage_backend": "gluster"})
