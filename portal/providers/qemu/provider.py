"""QemuProvider: each machine is a real QEMU virtual machine on this host, set up by cloud-init.

The cloud path without a cloud: the VM boots the configured image (see vm_images/), cloud-init
applies the portal's rendered user-data from a NoCloud seed, and the bootstrap agent trades its
token with the portal and reports ready, exactly as on OpenStack. The guest's only network is
QEMU's user-mode network with ``restrict=on``: the portal's address for guests (``public_url``,
``http://10.0.2.100`` by default) is forwarded to the portal's own port, and the guest's VNC
port 5901 to a free port on the host's 127.0.0.1, which is the machine's connection target.
Only what the settings name is forwarded beyond that: more guest addresses to host services
(``qemu_guest_forwards``: an NFS server, slurmrestd) and, when the environment offers them,
the guest's SSH and RDP servers from free ports on 127.0.0.1 (``qemu_host_forwards``),
recorded in the machine's connection target. The accelerator is KVM when a short boot probe
works (``qemu_accel = "auto"``, :mod:`daaas.portal.providers.qemu.accel`), else TCG.
QEMU runs in its own session, so machines survive a portal restart and are adopted by id.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from daaas.portal.providers.base import (
    Capacity,
    ConnectionTarget,
    LaunchSpec,
    Provider,
    ProviderState,
    ProviderStatus,
)
from daaas.portal.providers.errors import (
    CapacityExhausted,
    LaunchFailed,
    MachineGone,
    MissingSystemPackages,
    ProviderError,
)
from daaas.portal.providers.qemu import accel as accelerator
from daaas.portal.providers.qemu import vm

if TYPE_CHECKING:
    from daaas.portal.config import Settings

STOPPED = ("The machine stopped unexpectedly. Delete it and launch a new one; your storage is "
           "kept.")


class QemuProvider(Provider):
    """QEMU machines under ``<var_dir>/qemu/<machine_id>/``."""

    name = "qemu"
    uses_cloud_init = True

    def __init__(self, var_dir: str | Path = "var", image: str = "", kernel: str = "",
                 initrd: str = "", memory_mb: int = 2048, cpus: int = 2, accel: str = "auto",
                 max_machines: int = 2, portal: tuple[str, int] = ("127.0.0.1", 8080),
                 guest_portal: tuple[str, int] = ("10.0.2.100", 80),
                 guest_forwards: str = "", host_forwards: str = "") -> None:
        if not image:
            raise ValueError("qemu_image must name the disk image machines boot "
                             "(build one with `daaas images build ENV --rootfs-only`)")
        kernel_path = Path(kernel) if kernel else newest_cloud_kernel()
        self.config = vm.VmConfig(
            image=Path(image).resolve(), kernel=kernel_path,
            initrd=Path(initrd) if initrd else initrd_for(kernel_path), memory_mb=memory_mb,
            cpus=cpus, accel=accel, portal=portal, guest_portal=guest_portal,
            guest_forwards=vm.parse_guest_forwards(guest_forwards),
            host_forwards=vm.parse_host_forwards(host_forwards))
        self.root = Path(var_dir).resolve() / "qemu"
        self.max_machines = max_machines
        self._lock = threading.RLock()

    @classmethod
    def from_settings(cls, settings: Settings) -> QemuProvider:
        """Return the provider of the ``qemu_*`` settings, guests reaching us at ``public_url``.

        Guests reach the portal at ``public_url`` (e.g. http://10.0.2.100), which QEMU forwards
        to the portal's own host and port. Raises ValueError when public_url has no host,
        qemu_image is empty or a forward setting does not parse.
        """
        public = urlsplit(settings.public_url)
        if not public.hostname:
            raise ValueError("public_url must be the address QEMU guests reach the portal at, "
                             "e.g. http://10.0.2.100 (forwarded to the portal's host and port)")
        host = "127.0.0.1" if settings.host in ("", "0.0.0.0", "::") else settings.host
        return cls(var_dir=settings.var_dir, image=settings.qemu_image,
                   kernel=settings.qemu_kernel, initrd=settings.qemu_initrd,
                   memory_mb=settings.qemu_memory_mb, cpus=settings.qemu_cpus,
                   accel=settings.qemu_accel, max_machines=settings.qemu_max_machines,
                   portal=(host, settings.port), guest_portal=(public.hostname, public.port or 80),
                   guest_forwards=settings.qemu_guest_forwards,
                   host_forwards=settings.qemu_host_forwards)

    def launch(self, spec: LaunchSpec) -> None:
        """Start the VM of ``spec.machine_id`` unless it runs already; return once QEMU runs.

        Raises MissingSystemPackages (QEMU, qemu-img, cloud-localds), CapacityExhausted (all
        slots used, or a GPU asked for), LaunchFailed (no user-data, the image missing, QEMU
        refusing to start).
        """
        missing = vm.missing_programs()
        if missing:
            raise MissingSystemPackages(missing, missing.values())
        folder = self._folder(spec.machine_id)
        with self._lock:
            if folder.alive():
                return
            self._check_launchable(spec)
            self._remove(folder)
            try:
                vm.prepare(folder, self.config, spec.user_data or b"")
                vm.start(folder, self.config, tuple(spec.environment.protocols),
                         self.accel().accel)
            except (OSError, subprocess.SubprocessError) as exc:
                self._remove(folder)
                raise LaunchFailed("The machine could not be started; tell the portal "
                                   "administrators.", f"qemu {spec.machine_id}: {exc}") from None

    @property
    def supports_pools(self) -> bool:
        """Return True: a warm pool's VM boots with pool-mode user-data (no user) and its agent
        waits for a claim (contextualisation/BOOTSTRAP_PROTOCOL.md, "Pool mode"); the image's
        agent must speak it (images built from this version's vm_images do). Raises
        nothing."""
        return True

    def personalise(self, spec: LaunchSpec) -> None:
        """Hand the claimed VM to ``spec``'s user: nothing is sent into the VM. Once this
        returns the worker records the hand-over, and the portal's exchange answers the
        agent's claim request with the user's session; the agent sets it up and reports ready.
        Raises MachineGone when the VM no longer runs (it is then failed and deleted)."""
        folder = self._folder(spec.machine_id)
        with self._lock:
            if not folder.alive():
                raise MachineGone("This machine is no longer running.",
                                  f"qemu {spec.machine_id}: no running QEMU to hand over")

    def poll(self, machine_ids: Collection[str]) -> dict[str, ProviderStatus]:
        """Return every asked id's status from the machines' folders and /proc (one pass)."""
        with self._lock:
            return {mid: self._status(mid) for mid in machine_ids}

    def delete(self, machine_id: str) -> None:
        """Stop the VM and remove its overlay, seed and logs; already gone is success.

        Raises ProviderError if QEMU survives SIGKILL.
        """
        try:
            folder = self._folder(machine_id)
        except LaunchFailed:
            return
        with self._lock:
            self._remove(folder)

    def list_machine_ids(self) -> set[str]:
        """Return the ids of machines whose QEMU runs."""
        with self._lock:
            return {mid for mid in self._recorded() if self._folder(mid).alive()}

    def capacity(self) -> Capacity:
        """Return free VM slots out of ``max_machines``; no GPUs (0)."""
        used = len(self.list_machine_ids())
        return Capacity(gpus_free=0, sessions_free=max(0, self.max_machines - used),
                        sessions_total=self.max_machines, gpus_total=0)

    def accel(self) -> accelerator.AccelChoice:
        """Return the accelerator machines start with (probed once per process for "auto").

        Raises nothing."""
        return accelerator.choose(self.config.accel, self.config.kernel)

    def connection_target(self, machine_id: str) -> ConnectionTarget:
        """Return 127.0.0.1 and the host ports forwarded to the VM's VNC (5901) and, where
        forwarded, SSH and RDP servers. Raises MachineGone."""
        folder = self._folder(machine_id)
        state = folder.state()
        if state is None or not folder.alive():
            raise MachineGone("This machine is no longer running.",
                              f"qemu {machine_id}: no running QEMU")
        return ConnectionTarget(host="127.0.0.1", vnc_port=state.vnc_port,
                                rdp_port=state.ports.get("rdp"), ssh_port=state.ports.get("ssh"))

    def console_log(self, machine_id: str) -> Path:
        """Return the path of the machine's serial console log (for administrators and tests)."""
        return self._folder(machine_id).console

    # -- internals ---------------------------------------------------------------------------

    def _folder(self, machine_id: str) -> vm.VmFolder:
        try:
            return vm.VmFolder(self.root, machine_id)
        except ValueError:
            raise LaunchFailed("The machine could not be started (invalid identifier).",
                               f"qemu: unsafe machine id {machine_id!r}") from None

    def _check_launchable(self, spec: LaunchSpec) -> None:
        if spec.environment.gpu == "required":
            raise CapacityExhausted("This environment needs a GPU; this server has none.")
        if len(self.list_machine_ids()) >= self.max_machines:
            raise CapacityExhausted("All virtual machine slots on this server are in use; try "
                                    "again when one is free.",
                                    f"qemu: {self.max_machines} machines running")
        if not spec.user_data:
            raise LaunchFailed("The machine could not be started; tell the portal "
                               "administrators.", f"qemu {spec.machine_id}: no user-data")
        for path in (self.config.image, self.config.kernel, self.config.initrd):
            if not path.is_file():
                raise LaunchFailed("The machine's system image is not available on this "
                                   "server; tell the portal administrators.",
                                   f"qemu: {path} does not exist")

    def _status(self, machine_id: str) -> ProviderStatus:
        folder = self._folder(machine_id)
        if not folder.path.is_dir():
            return ProviderStatus(ProviderState.GONE)
        if folder.state() is None:
            return ProviderStatus(ProviderState.BUILDING)
        if folder.alive():
            return ProviderStatus(ProviderState.RUNNING)
        return ProviderStatus(ProviderState.ERROR, STOPPED,
                              f"qemu {machine_id}: QEMU exited: {folder.log_tail()}")

    def _recorded(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return [p.name for p in self.root.iterdir() if p.is_dir() and vm.SAFE_ID.match(p.name)]

    def _remove(self, folder: vm.VmFolder) -> None:
        if not vm.stop(folder):
            raise ProviderError(f"The machine {folder.machine_id} could not be stopped.",
                                f"qemu {folder.machine_id}: QEMU survived SIGKILL")
        shutil.rmtree(folder.path, ignore_errors=True)


def newest_cloud_kernel(boot: Path = Path("/boot")) -> Path:
    """Return the newest /boot/vmlinuz-*-cloud-amd64 (Debian linux-image-cloud-amd64).

    Returns a path that does not exist when there is none; launches then fail with a message.
    """
    kernels = sorted(boot.glob("vmlinuz-*-cloud-amd64"), key=lambda p: _version(p.name))
    return kernels[-1] if kernels else boot / "vmlinuz-cloud-amd64"


def initrd_for(kernel: Path) -> Path:
    """Return the initrd Debian installs next to ``kernel``."""
    return kernel.with_name(kernel.name.replace("vmlinuz-", "initrd.img-", 1))


def _version(name: str) -> tuple[int, ...]:
    numbers = name.removeprefix("vmlinuz-").replace("-", ".").split(".")
    return tuple(int(part) for part in numbers if part.isdigit())
