"""A cloud-init launch with the ``local`` storage backend: with ``local_storage_export`` the
machine's user-data mounts its owner's folder by NFS (and only theirs); without it the machine's
events say the storage is not mounted, once, however often the launch is retried."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from daaas.portal import create_app
from daaas.portal.storage.backends import NOT_EXPORTED
from tests.integration.context_support import Cloud, FlakyCloud, cloud_config, machine_row
from tests.support.machines import launch


def make_app(settings_override: dict[str, Any], **more: Any) -> Iterator[Flask]:
    application = create_app({**settings_override, **more})
    yield application
    application.extensions["daaas"].engine.dispose()


@pytest.fixture
def exported_app(settings_override: dict[str, Any]) -> Iterator[Flask]:
    yield from make_app(settings_override, local_storage_export="10.0.2.100:/storage/{username}",
                        storage_mount_options="vers=4.1")


@pytest.fixture
def unexported_app(settings_override: dict[str, Any]) -> Iterator[Flask]:
    yield from make_app(settings_override)


def test_the_vm_mounts_its_owners_folder_from_the_portal_host(exported_app: Flask) -> None:
    cloud = Cloud(exported_app)
    machine_id, _token = cloud.launch()
    user_data = cloud.provider.specs[machine_id].user_data
    assert user_data is not None
    mounts = cloud_config(user_data)["mounts"]
    storage = [entry for entry in mounts if entry[1] == "/home/scientist/storage"]
    assert storage == [["10.0.2.100:/storage/scientist", "/home/scientist/storage", "nfs",
                        "rw,vers=4.1,_netdev,nofail", "0", "0"]]
    assert not any("/storage/" in str(entry[0]) and "scientist" not in str(entry[0])
                   for entry in mounts)
    settings = exported_app.extensions["daaas"].settings
    assert (settings.var_path / "storage" / "scientist").is_dir()
    assert NOT_EXPORTED not in [e.message for e in machine_row(exported_app, machine_id).events]


def test_without_an_export_the_machines_events_say_storage_is_not_mounted(
        unexported_app: Flask) -> None:
    cloud = Cloud(unexported_app)
    machine_id, _token = cloud.launch()
    user_data = cloud.provider.specs[machine_id].user_data
    assert user_data is not None
    assert not [e for e in cloud_config(user_data).get("mounts", [])
                if e[1].endswith("/storage")]
    messages = [event.message for event in machine_row(unexported_app, machine_id).events]
    assert messages.count(NOT_EXPORTED) == 1


def test_a_retried_launch_says_it_once(unexported_app: Flask) -> None:
    cloud = Cloud(unexported_app, FlakyCloud())  # the first launch times out: tried again
    machine_id = launch(unexported_app)
    cloud.cycle()
    assert machine_row(unexported_app, machine_id).state == "requested"
    cloud.cycle()
    row = machine_row(unexported_app, machine_id)
    assert row.state == "provisioning"
    assert [event.message for event in row.events].count(NOT_EXPORTED) == 1
