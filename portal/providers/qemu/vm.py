"""One QEMU virtual machine of the QEMU provider: its folder, disk, seed, command and process.

A machine lives in ``<var>/qemu/<machine id>/``: ``disk.qcow2`` (a copy-on-write overlay of the
configured image), ``seed.img`` (a NoCloud seed with the portal's user-data), ``console.log``
(the serial console), ``qemu.log`` (QEMU's own messages) and ``state.json`` (pid, its start
time, the accelerator and the forwarded ports). The guest's only network is QEMU's user-mode
network with ``restrict=on``: it reaches the portal through one forwarded address (and any
more the settings name, ``qemu_guest_forwards``: an NFS server, slurmrestd), and the host
reaches its VNC server, and its SSH and RDP servers when the settings and the environment
offer them (``qemu_host_forwards``), through forwarded ports on 127.0.0.1 only (nothing
beyond this host can reach them: the counterpart of the OpenStack provider's per-machine
security group).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from daaas import package_path
from daaas.portal.providers import processes
from daaas.portal.providers.processes import ProcRef, free_port, is_alive, spawn

SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
PROGRAMS = {"qemu-system-x86_64": "qemu-system-x86", "qemu-img": "qemu-utils",
            "cloud-localds": "cloud-image-utils"}
RELAY = package_path("daaas.portal.providers.qemu", "relay.py")
GUEST_VNC_PORT = 5901
#: Guest services the host may forward to (``qemu_host_forwards``), by protocol name.
GUEST_PORTS = {"ssh": 22, "rdp": 3389}


@dataclass(frozen=True)
class GuestForward:
    """A guest address forwarded to a host address (QEMU ``guestfwd``)."""

    guest_host: str
    guest_port: int
    host: str
    port: int


def parse_guest_forwards(text: str) -> tuple[GuestForward, ...]:
    """Return the forwards of ``'guest_ip:port=host:port, ...'``.

    Raises ValueError naming the entry that does not fit.
    """
    forwards = []
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        guest, _, host = entry.partition("=")
        try:
            guest_host, guest_port = guest.rsplit(":", 1)
            host_name, host_port = host.rsplit(":", 1)
            forward = GuestForward(guest_host.strip(), int(guest_port), host_name.strip(),
                                   int(host_port))
        except ValueError:
            raise ValueError(f"qemu_guest_forwards: {entry!r} is not guest_ip:port=host:port")\
                from None
        if not re.fullmatch(r"10\.0\.2\.\d{1,3}", forward.guest_host) or not \
                re.fullmatch(r"[A-Za-z0-9.:-]+", forward.host) or not (
                    0 < forward.guest_port < 65536 and 0 < forward.port < 65536):
            raise ValueError(f"qemu_guest_forwards: {entry!r}: the guest address must be in "
                             "10.0.2.0/24 and the ports 1-65535")
        forwards.append(forward)
    return tuple(forwards)


def parse_host_forwards(text: str) -> tuple[str, ...]:
    """Return the protocol names of ``'ssh, rdp'``. Raises ValueError for an unknown name."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [name for name in names if name not in GUEST_PORTS]
    if unknown:
        raise ValueError(f"qemu_host_forwards: {', '.join(unknown)} unknown; use "
                         f"{', '.join(GUEST_PORTS)}")
    return names


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
    guest_forwards: tuple[GuestForward, ...] = ()  # more guest → host forwards
    host_forwards: tuple[str, ...] = ()  # guest services (GUEST_PORTS) the host may reach


@dataclass
class VmState:
    """What ``state.json`` records about a running machine."""

    pid: int
    start: float
    vnc_port: int
    started_at: float
    ports: dict[str, int] = field(default_factory=dict)  # protocol → host port on 127.0.0.1
    accel: str = ""

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


def command(folder: VmFolder, config: VmConfig, vnc_port: int,
            ports: dict[str, int] | None = None, accel: str = "") -> list[str]:
    """Return the QEMU command line of the machine: ``ports`` maps protocols of GUEST_PORTS to
    the host ports forwarded to them, ``accel`` overrides the configured accelerator."""
    guest_host, guest_port = config.guest_portal
    forwards = [GuestForward(guest_host, guest_port, *config.portal), *config.guest_forwards]
    netdev = "user,id=net0,restrict=on," + ",".join(
        [f"guestfwd=tcp:{f.guest_host}:{f.guest_port}-cmd:{sys.executable} {RELAY} "
         f"{f.host} {f.port}" for f in forwards]
        + [f"hostfwd=tcp:127.0.0.1:{vnc_port}-:{GUEST_VNC_PORT}"]
        + [f"hostfwd=tcp:127.0.0.1:{port}-:{GUEST_PORTS[name]}"
           for name, port in sorted((ports or {}).items())])
    return ["qemu-system-x86_64", "-name", f"daaas-{folder.machine_id}",
            "-accel", accel or config.accel, "-m", str(config.memory_mb), "-smp", str(config.cpus),
            "-nographic", "-monitor", "none", "-serial", f"file:{folder.console}",
            "-kernel", str(config.kernel), "-initrd", str(config.initrd),
            "-append", "root=/dev/vda rw console=ttyS0 net.ifnames=0",
            "-drive", f"file={folder.disk},if=virtio,format=qcow2",
            "-drive", f"file={folder.seed},if=virtio,format=raw,readonly=on",
            "-netdev", netdev, "-device", "virtio-net-pci,netdev=net0"]


def start(folder: VmFolder, config: VmConfig, services: tuple[str, ...] = (),
          accel: str = "") -> VmState:
    """Start QEMU in its own session under ``accel`` (default: the configured one), forwarding
    a free host port to each of ``services`` the settings allow; return its recorded state.

    Raises OSError.
    """
    vnc_port = free_port()
    ports = {name: free_port() for name in services if name in config.host_forwards}
    accel = accel or config.accel
    ref = spawn(command(folder, config, vnc_port, ports, accel), os.environ, folder.path,
                folder.log)
    state = VmState(ref.pid, ref.start, vnc_port, time.time(), ports, accel)
    folder.save(state)
    return state


def stop(folder: VmFolder, grace: float = 5.0) -> bool:
    """Stop the machine's QEMU (SIGTERM, then SIGKILL); return True if it is gone."""
    state = folder.state()
    return state is None or not processes.stop([state.ref], {}, grace)


def _quiet(args: list[str]) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=120)
