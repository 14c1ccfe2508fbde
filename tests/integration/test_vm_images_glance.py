"""`daaas images` upload / list / retire / restore and `catalogue check --cloud` against the REAL
Glance (and Nova, to prove launches boot the image the tools chose) of ``.ci/openstack.sh``.

Each test uses environments and image names of its own (a random suffix) and deletes every
image it uploaded. Skipped locally when DAAAS_TEST_OPENSTACK_CLOUD is unset; in CI they run.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from daaas.catalogue.loader import load_catalogue
from daaas.catalogue.model import Environment
from daaas.portal.cli import main
from daaas.portal.providers import LaunchSpec, ProviderState
from daaas.vm_images import upload as glance
from tests.openstack import support

ENTRY = """name: {name}
title: Image test {name}
description: An environment of the image tooling's tests.
icon: desktop.svg
image:
  {kind}: {value}
flavors:
  default: m1.small
  allowed: [m1.small]
protocols: [novnc]
limits:
  max_lifetime_hours: 1
  idle_timeout_minutes: 60
"""


@pytest.fixture
def conn() -> Any:
    """The portal's own (member) credential: images are uploaded as the project, not admin."""
    import openstack

    return openstack.connect(cloud=support.cloud_name())


@pytest.fixture
def catalogue_dir(tmp_path: Path, conn: Any) -> Iterator[Path]:
    """A catalogue of three entries: found by tag, by name, and one whose image is missing."""
    suffix = uuid.uuid4().hex[:8]
    entries = {f"imgtag-{suffix}": ("tag", f"daaas-test-tag-{suffix}"),
               f"imgname-{suffix}": ("name", f"daaas-test-name-{suffix}"),
               f"imgmissing-{suffix}": ("tag", f"daaas-test-missing-{suffix}")}
    folder = tmp_path / "catalogue"
    folder.mkdir()
    for name, (kind, value) in entries.items():
        (folder / f"{name}.yaml").write_text(ENTRY.format(name=name, kind=kind, value=value))
    yield folder
    for image in conn.image.images(tag=[glance.MANAGED_TAG]):
        if str((image.properties or {}).get("daaas_environment", "")).endswith(suffix):
            conn.image.delete_image(image, ignore_missing=True)


@pytest.fixture
def disk(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    return path


def environment(folder: Path, prefix: str) -> Environment:
    catalogue = load_catalogue(folder)
    assert not catalogue.problems, catalogue.problems
    return next(env for name, env in catalogue.environments.items() if name.startswith(prefix))


def booted_image(env: Environment) -> str:
    """Launch a server for ``env`` with the portal's OpenStack provider; return its image id."""
    for provider in support.provider_fixture():
        machine_id = uuid.uuid4().hex
        provider.launch(LaunchSpec(machine_id, "alice", 20000, 20000, env, "Pw4-vnc!",
                                   user_data=support.USER_DATA))
        support.wait_state(provider, machine_id, ProviderState.RUNNING)
        servers = [s for s in support.servers_tagged(provider.server_tag)
                   if s.metadata.get("daaas_machine_id") == machine_id]
        return str(servers[0].image["id"])
    raise AssertionError("no provider")


def test_tag_entry_newest_upload_wins_retire_rolls_back_restore_forward(
        conn: Any, catalogue_dir: Path, disk: Path) -> None:
    env = environment(catalogue_dir, "imgtag-")
    _kind, tag = glance.image_key(env)
    first_at = datetime(2026, 1, 1, tzinfo=UTC)
    first = glance.upload(conn, env, disk, first_at)
    second = glance.upload(conn, env, disk, first_at + timedelta(hours=1))
    assert second.name == f"daaas-{env.name}-20260101T010000Z"
    assert second.properties["daaas_environment"] == env.name
    assert second.os_distro == "debian"
    assert second.hw_disk_bus == "virtio"
    assert second.disk_format == "qcow2" and second.status == "active"
    assert set(second.tags) == {glance.MANAGED_TAG, tag}

    rows = glance.list_images(conn, env)
    assert [(r.id, r.current) for r in rows] == [(second.id, True), (first.id, False)]
    assert glance.current_image(conn, env).id == second.id

    assert glance.retire(conn, env, second.name).id == first.id  # roll back
    assert tag not in conn.image.get_image(second.id).tags
    assert glance.current_image(conn, env).id == first.id
    assert [r.retired for r in glance.list_images(conn, env)] == [True, False]

    assert glance.restore(conn, env, second.id).id == second.id  # roll forward
    assert glance.current_image(conn, env).id == second.id
    with pytest.raises(glance.ImageError, match="is not an image of"):
        glance.retire(conn, env, "no-such-image")


def test_name_entry_keeps_the_name_unique_and_launches_boot_the_chosen_image(
        conn: Any, catalogue_dir: Path, disk: Path) -> None:
    env = environment(catalogue_dir, "imgname-")
    _kind, name = glance.image_key(env)
    first = glance.upload(conn, env, disk, datetime(2026, 2, 1, tzinfo=UTC))
    assert first.name == name
    second = glance.upload(conn, env, disk, datetime(2026, 2, 2, tzinfo=UTC))
    assert second.name == name
    assert conn.image.get_image(first.id).name == f"daaas-{env.name}-20260201T000000Z"
    assert booted_image(env) == second.id  # the provider's own lookup, by exact name

    glance.retire(conn, env, second.id)  # roll back
    assert conn.image.get_image(first.id).name == name
    assert conn.image.get_image(second.id).name == f"daaas-{env.name}-20260202T000000Z"
    assert booted_image(env) == first.id


def test_cli_upload_list_retire_and_catalogue_check_cloud(
        catalogue_dir: Path, disk: Path) -> None:
    cloud = support.cloud_name()
    runner = CliRunner()
    check = runner.invoke(main, ["catalogue", "check", str(catalogue_dir), "--cloud", cloud])
    assert check.exit_code == 1, check.output
    assert "images in" in check.output and "3 missing" in check.output

    name = next(p.stem for p in catalogue_dir.glob("imgtag-*.yaml"))
    options = ["--cloud", cloud, "--catalogue", str(catalogue_dir)]
    uploaded = runner.invoke(main, ["images", "upload", name, str(disk), *options])
    assert uploaded.exit_code == 0, uploaded.output
    assert f"launches of {name} use it now" in uploaded.output
    listing = runner.invoke(main, ["images", "list", name, *options])
    assert listing.exit_code == 0 and listing.output.startswith("*"), listing.output
    image_name = listing.output.split("\t")[1]

    check = runner.invoke(main, ["catalogue", "check", str(catalogue_dir), "--cloud", cloud])
    missing = [line for line in check.output.splitlines() if "no image with the" in line]
    assert check.exit_code == 1 and len(missing) == 2, check.output  # name + missing entries
    assert all(name not in line for line in missing)

    retired = runner.invoke(main, ["images", "retire", name, image_name, *options])
    assert retired.exit_code == 0 and "has no usable image now" in retired.output
    unknown = runner.invoke(main, ["images", "retire", name, "nope", *options])
    assert unknown.exit_code == 1 and "is not an image of" in unknown.output
