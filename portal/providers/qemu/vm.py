"""One QEMU virtual machine of the QEMU provider: its folder, disk, seed, command and process.

A machine lives in ``<var>/qemu/<machine id>/``: ``disk.qcow2`` (a copy-on-write overlay of the
configured image), ``seed.img`` (a NoCloud seed with the portal's user-data), ``console.log``
(the serial console), ``qemu.log`` (QEMU's own messages) and ``state.json`` (pid, its start
time and the forwarded VNC port). The guest's only network is QEMU's user-mode network with
``restrict=on``: it reaches the portal through one forwarded address, and the host reaches its
VNC server through one forwarded port on 127.0.0.1 (nothing beyond this host can reach it: the
counterpart of the OpenStack provider's per-machine VNC security group).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from daaas import package_path
from daaas.portal.providers import processes
from daaas.portal.providers.processes import ProcRef, free_port, is_alive, spawn

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
PROGRAMS = {"qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils",
            "cloud-localds": "cloud-image-utils"}
RELAY = package_path("daaas.portal.providers.qemu", "relay.py")
GUEST_VNC_PORT = 5901


@dataclass(frozen=True)
class VmConfig:
    """How every machine is started (from the portal's qemu_* settings)."""

    image: Path
    kernel: Path
    initrd: Path
    memory_mb: int = 2048
    cpus: int = 2
    accel: str = "tcg"
    portal: tuple[str, int] = ("127.0.0.1", 8080)  # where the guest's portal address leads
    guest_portal: tuple[str, int] = ("10.0.2.100", 80)  # public_url's host:port, as guests see it


@dataclass
class VmState:
    """What ``state.json`` records about a running machine."""

    pid: int
    start: float
    vnc_port: int
    started_at: float

    @property
    def ref(self) -> ProcRef:
        """The QEMU process, immune to pid reuse."""
        return ProcRef(self.pid, self.start)


class VmFolder:
    """The files of one machine."""

    def __init__(self, root: Path, machine_id: str) -> None:
        if not SAFE_ID.match(machine_id):
            raise ValueError(f"unsafe machine id {machine_id!r}")
        self.machine_id = machine_id
        self.path = root / machine_id
        self.disk, self.seed = self.path / "disk.qcow2", self.path / "seed.img"
        self.console, self.log = self.path / "console.log", self.path / "qemu.log"
        self.state_file = self.path / "state.json"

    def state(self) -> VmState | None:
        """Return the recorded state, or None when there is none (or it is unreadable)."""
        try:
            return VmState(**json.loads(self.state_file.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError):
            return None

    def alive(self) -> bool:
        """Return True if the machine's QEMU process runs."""
        state = self.state()
        return state is not None and is_alive(state.ref)

    def save(self, state: VmState) -> None:
        """Record ``state`` atomically."""
        temporary = self.state_file.with_suffix(".new")
        temporary.write_text(json.dumps(asdict(state)), encoding="utf-8")
        temporary.replace(self.state_file)

    def log_tail(self, lines: int = 5) -> str:
        """Return the last lines of QEMU's own log (never the console: it may show secrets)."""
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])


def missing_programs() -> dict[str, str]:
    """Return {program: Debian package} for each program the provider needs and lacks."""
    return {program: package for program, package in PROGRAMS.items()
            if shutil.which(program) is None}


def prepare(folder: VmFolder, config: VmConfig, user_data: bytes) -> None:
    """Create the machine's overlay disk and NoCloud seed. Raises OSError or CalledProcessError."""
    folder.path.mkdir(parents=True, exist_ok=True)
    backing = "raw" if config.image.suffix in (".raw", ".img") else "qcow2"
    _quiet(["qemu-img", "create", "-q", "-f", "qcow2", "-F", backing, "-b",
            str(config.image), str(folder.disk)])
    user_file, meta_file = folder.path / "user-data", folder.path / "meta-data"
    user_file.write_bytes(user_data)
    meta_file.write_text(f"instance-id: daaas-{folder.machine_id}\n"
                         f"local-hostname: daaas-{folder.machine_id[:12]}\n", encoding="utf-8")
    try:
        _quiet(["cloud-localds", str(folder.seed), str(user_file), str(meta_file)])
    finally:
        user_file.unlink(missing_ok=True)  # it carries the single-use bootstrap token


def command(folder: VmFolder, config: VmConfig, vnc_port: int) -> list[str]:
    """Return the QEMU command line of the machine."""
    guest_host, guest_port = config.guest_portal
    portal_host, portal_port = config.portal
    relay = f"cmd:{sys.executable} {RELAY} {portal_host} {portal_port}"
    netdev = (f"user,id=net0,restrict=on,guestfwd=tcp:{guest_host}:{guest_port}-{relay},"
              f"hostfwd=tcp:127.0.0.1:{vnc_port}-:{GUEST_VNC_PORT}")
    return ["qemu-system-x86_64", "-name", f"daaas-{folder.machine_id}",
            "-accel", config.accel, "-m", str(config.memory_mb), "-smp", str(config.cpus),
            "-nographic", "-monitor", "none", "-serial", f"file:{folder.console}",
            "-kernel", str(config.kernel), "-initrd", str(config.initrd),
            "-append", "root=/dev/vda rw console=ttyS0 net.ifnames=0",
            "-drive", f"file={folder.disk},if=virtio,format=qcow2",
            "-drive", f"file={folder.seed},if=virtio,format=raw,readonly=on",
            "-netdev", netdev, "-device", "virtio-net-pci,netdev=net0"]


def start(folder: VmFolder, config: VmConfig) -> VmState:
    """Start QEMU in its own session; return its recorded state. Raises OSError."""
    vnc_port = free_port()
    ref = spawn(command(folder, config, vnc_port), os.environ, folder.path, folder.log)
    state = VmState(ref.pid, ref.start, vnc_port, time.time())
    folder.save(state)
    return state


def stop(folder: VmFolder, grace: float = 5.0) -> bool:
    """Stop the machine's QEMU (SIGTERM, then SIGKILL); return True if it is gone."""
    state = folder.state()
    return state is None or not processes.stop([state.ref], {}, grace)


def _quiet(args: list[str]) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=120)
