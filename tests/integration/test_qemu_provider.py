"""QemuProvider with real QEMU processes (no full boot: the tests/vm tier boots a real image).

A blank disk stands in for the image: the host's cloud kernel starts and waits for a root
filesystem that never comes, which keeps QEMU running, enough to test launch, idempotence,
the forwarded VNC port (listening on 127.0.0.1 only), poll, delete and adoption. Skipped
when QEMU is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from daaas.portal.backends import BackendUnavailable
from daaas.portal.config import load_settings
from daaas.portal.providers import (
    PROVIDERS,
    CapacityExhausted,
    LaunchFailed,
    LaunchSpec,
    ProviderState,
)
from daaas.portal.providers.qemu import QemuProvider, accel, initrd_for, newest_cloud_kernel
from tests.support.environments import make_environment

USER_DATA = b"#cloud-config\nruncmd:\n  - echo daaas-test\n"


@pytest.fixture
def image(tmp_path: Path) -> Path:
    if shutil.which("qemu-system-x86_64") is None or not newest_cloud_kernel().exists():
        if os.environ.get("CI"):
            pytest.fail("QEMU and linux-image-cloud-amd64 must be installed in CI")
        pytest.skip("QEMU or the cloud kernel is not installed")
    path = tmp_path / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "64M"], check=True)
    return path


@pytest.fixture
def provider(image: Path, tmp_path: Path) -> Iterator[QemuProvider]:
    qemu = QemuProvider(tmp_path / "var", str(image), memory_mb=256, cpus=1, max_machines=2)
    yield qemu
    for machine_id in qemu.list_machine_ids():
        qemu.delete(machine_id)


def spec(user_data: bytes | None = USER_DATA, gpu: str = "none") -> LaunchSpec:
    return LaunchSpec(uuid.uuid4().hex, "alice", 20000, 20000,
                      make_environment(title="Test", gpu=gpu),
                      "Pw4-vnc!", user_data=user_data)


def test_launch_is_idempotent_forwards_vnc_and_delete_removes_everything(
        provider: QemuProvider) -> None:
    launch = spec()
    provider.launch(launch)
    provider.launch(launch)  # a second launch finds the running VM
    assert provider.list_machine_ids() == {launch.machine_id}
    assert provider.poll([launch.machine_id, "unknown"]) == {
        launch.machine_id: provider.poll([launch.machine_id])[launch.machine_id],
        "unknown": provider.poll(["unknown"])["unknown"]}
    assert provider.poll([launch.machine_id])[launch.machine_id].state is ProviderState.RUNNING
    assert provider.poll(["unknown"])["unknown"].state is ProviderState.GONE
    folder = provider.root / launch.machine_id
    assert (folder / "seed.img").stat().st_size > 0
    assert not (folder / "user-data").exists()  # the token is only in the seed
    target = provider.connection_target(launch.machine_id)
    assert target.host == "127.0.0.1" and target.vnc_port > 1024
    command = _cmdline(_pid(folder))
    netdev = next(arg for arg in command if arg.startswith(b"user,"))
    assert b"restrict=on" in netdev
    assert f"hostfwd=tcp:127.0.0.1:{target.vnc_port}-:5901".encode() in netdev
    assert b"guestfwd=tcp:10.0.2.100:80-cmd:" in netdev
    # the VM's VNC is reachable from this host's loopback only: QEMU listens on nothing else
    assert _listening(_pid(folder)) == {("127.0.0.1", target.vnc_port)}

    provider.delete(launch.machine_id)
    provider.delete(launch.machine_id)  # already gone is success
    assert not folder.exists() and provider.list_machine_ids() == set()


def test_refusals_name_the_reason(provider: QemuProvider, tmp_path: Path) -> None:
    with pytest.raises(CapacityExhausted) as full:
        provider.launch(spec(gpu="required"))
    assert "needs a GPU" in full.value.user_message
    with pytest.raises(LaunchFailed) as caught:
        provider.launch(spec(user_data=None))
    assert "no user-data" in caught.value.log_message
    missing = QemuProvider(tmp_path / "var2", str(tmp_path / "no-such.qcow2"))
    with pytest.raises(LaunchFailed) as caught:
        missing.launch(spec())
    assert "system image is not available" in caught.value.user_message
    first, second = spec(), spec()
    provider.launch(first)
    provider.launch(second)
    with pytest.raises(CapacityExhausted) as full:
        provider.launch(spec())
    assert "slots" in full.value.user_message


def test_a_vm_whose_qemu_exits_is_an_error_with_qemus_reason(image: Path,
                                                              tmp_path: Path) -> None:
    broken = QemuProvider(tmp_path / "var", str(image), memory_mb=64 * 1024 * 1024)
    launch = spec()
    broken.launch(launch)
    deadline = time.monotonic() + 30
    while (status := broken.poll([launch.machine_id])[launch.machine_id]).state \
            is ProviderState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status.state is ProviderState.ERROR
    assert "stopped unexpectedly" in status.reason
    assert "memory" in status.log_message.lower()
    broken.delete(launch.machine_id)
    assert broken.poll([launch.machine_id])[launch.machine_id].state is ProviderState.GONE


def test_adopt_keeps_known_vms_and_stops_the_others(provider: QemuProvider) -> None:
    known, stray = spec(), spec()
    provider.launch(known)
    provider.launch(stray)
    assert provider.adopt_or_cleanup({known.machine_id}) == {known.machine_id}
    assert provider.list_machine_ids() == {known.machine_id}


def test_settings_choose_the_provider_and_need_public_url(image: Path, tmp_path: Path) -> None:
    base = {"provider": "qemu", "qemu_image": str(image), "var_dir": str(tmp_path)}
    with pytest.raises(BackendUnavailable) as caught:
        PROVIDERS.build(load_settings(base, environ={}))
    assert "public_url" in caught.value.user_message
    chosen = PROVIDERS.build(load_settings(
        {**base, "public_url": "http://10.0.2.100", "port": 8123, "host": "0.0.0.0"},
        environ={}))
    assert isinstance(chosen, QemuProvider)
    assert chosen.config.portal == ("127.0.0.1", 8123)
    assert chosen.config.guest_portal == ("10.0.2.100", 80)
    assert chosen.config.initrd == initrd_for(chosen.config.kernel)


def _cmdline(pid: int) -> list[bytes]:
    """Return the process's arguments; empty for a moment while the kernel still runs its
    exec (Popen returns as soon as the vforked child has started exec), so wait for them."""
    deadline = time.monotonic() + 5
    while not (arguments := Path(f"/proc/{pid}/cmdline").read_bytes()):
        assert time.monotonic() < deadline, f"pid {pid} shows no command line"
        time.sleep(0.01)
    return arguments.split(b"\0")


def _listening(pid: int) -> set[tuple[str, int]]:
    """Return the (address, port) of every TCP socket the process listens on, waiting up to
    5 s for the first (QEMU opens its forwards while it starts)."""
    deadline = time.monotonic() + 5
    while True:
        found = {(c.laddr.ip, c.laddr.port) for c in psutil.Process(pid).net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN}
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def _pid(folder: Path) -> int:
    import json

    return int(json.loads((folder / "state.json").read_text())["pid"])


def test_only_the_forwards_the_settings_and_the_environment_ask_for(image: Path,
                                                                    tmp_path: Path) -> None:
    qemu = QemuProvider(tmp_path / "var", str(image), memory_mb=256, cpus=1,
                        guest_forwards="10.0.2.101:2049=127.0.0.1:20490",
                        host_forwards="ssh, rdp")
    launch = LaunchSpec(uuid.uuid4().hex, "alice", 20000, 20000,
                        make_environment(title="Test", protocols=["novnc", "ssh"]),
                        "Pw4-vnc!", user_data=USER_DATA)
    try:
        qemu.launch(launch)
        folder = qemu.root / launch.machine_id
        target = qemu.connection_target(launch.machine_id)
        assert target.ssh_port is not None and target.rdp_port is None  # rdp not offered
        netdev = next(arg for arg in _cmdline(_pid(folder)) if arg.startswith(b"user,"))
        assert b"restrict=on" in netdev
        assert b"guestfwd=tcp:10.0.2.101:2049-cmd:" in netdev and b" 127.0.0.1 20490" in netdev
        assert f"hostfwd=tcp:127.0.0.1:{target.ssh_port}-:22".encode() in netdev
        assert b":3389" not in netdev
        deadline = time.monotonic() + 5
        while len(_listening(_pid(folder))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _listening(_pid(folder)) == {("127.0.0.1", target.vnc_port),
                                            ("127.0.0.1", target.ssh_port)}
        state = json.loads((folder / "state.json").read_text())
        assert state["accel"] == qemu.accel().accel in ("kvm", "tcg")
        assert state["ports"] == {"ssh": target.ssh_port}
    finally:
        qemu.delete(launch.machine_id)


@pytest.mark.parametrize(("setting", "value"), [
    ("guest_forwards", "10.0.2.101:2049"), ("guest_forwards", "192.168.1.1:22=127.0.0.1:22"),
    ("guest_forwards", "10.0.2.101:0=127.0.0.1:22"), ("host_forwards", "ssh,telnet")])
def test_forward_settings_that_do_not_fit_are_refused(image: Path, tmp_path: Path,
                                                     setting: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"qemu_{setting}"):
        QemuProvider(tmp_path / "var", str(image), **{setting: value})


def test_the_kvm_probe_boots_the_kernel_and_falls_back_to_tcg(tmp_path: Path) -> None:
    if shutil.which("qemu-system-x86_64") is None or not newest_cloud_kernel().exists():
        pytest.skip("QEMU or the cloud kernel is not installed")
    # the probe's own machinery, under TCG (which always works): it sees the kernel's banner
    booted = accel.probe(newest_cloud_kernel(), Path("/dev/null"), seconds=30, accel="tcg")
    assert booted == accel.AccelChoice("tcg", "tcg probe booted the kernel")
    # no usable /dev/kvm, or a kernel that prints nothing: TCG, saying why
    assert accel.probe(newest_cloud_kernel(), tmp_path / "kvm").accel == "tcg"
    empty = tmp_path / "vmlinuz"
    empty.write_bytes(b"")
    silent = accel.probe(empty, Path("/dev/null"), seconds=3, accel="tcg")
    assert silent.accel == "tcg" and "printed nothing" in silent.reason, silent
    assert accel.verdict(b"KVM internal error. Suberror: 1\nLinux version").accel == "tcg"
    # this host's answer, whichever it is, comes with a reason and is kept for the process
    chosen = accel.choose("auto", newest_cloud_kernel())
    assert chosen.accel in ("kvm", "tcg") and chosen.reason
    assert accel.choose("auto", newest_cloud_kernel()) is chosen
    assert accel.choose("tcg", newest_cloud_kernel()).accel == "tcg"
