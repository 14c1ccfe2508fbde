"""Which providers keep warm pools (issue 20), and a QEMU hand-over of a VM that is not
running. (OpenStack's hand-over runs against a real cloud: tests/integration/
test_openstack_pools.py; the whole pooled path: tests/integration/test_warm_pools_vm.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from daaas.portal.providers import LaunchSpec, MachineGone
from daaas.portal.providers.openstack import OpenStackProvider
from daaas.portal.providers.qemu import QemuProvider
from tests.support.environments import make_environment


def test_the_cloud_providers_keep_pools(tmp_path: Path) -> None:
    qemu = QemuProvider(var_dir=tmp_path, image=str(tmp_path / "disk.qcow2"),
                        kernel=str(tmp_path / "vmlinuz"), initrd=str(tmp_path / "initrd"))
    assert qemu.supports_pools and qemu.pool_unavailable_reason(make_environment()) is None
    assert OpenStackProvider("somewhere").supports_pools


def test_qemu_cannot_hand_over_a_vm_that_is_not_running(tmp_path: Path) -> None:
    qemu = QemuProvider(var_dir=tmp_path, image=str(tmp_path / "disk.qcow2"),
                        kernel=str(tmp_path / "vmlinuz"), initrd=str(tmp_path / "initrd"))
    spec = LaunchSpec("m" * 32, "alice", 20001, 20001, make_environment(), "Pw4-vnc!")
    with pytest.raises(MachineGone):
        qemu.personalise(spec)
