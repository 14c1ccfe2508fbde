"""Which accelerator QEMU machines use: KVM when a short real boot works, else TCG.

``/dev/kvm`` being there is not KVM working: on some hosts (nested guests) ``KVM_CREATE_VM``
succeeds but the guest stops at its first instructions with "KVM internal error". So
``qemu_accel = "auto"`` boots the machines' own kernel once under ``-accel kvm`` with no disk
and a serial console; KVM is used when "Linux version" shows within a few seconds and QEMU
reports no KVM error. The answer is kept for the process (one probe), logged, and recorded in
each machine's ``state.json`` (``accel``) for the tests and the benchmark.
"""

from __future__ import annotations

import logging
import os
import selectors
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)
KVM_DEVICE = Path("/dev/kvm")
BOOTED = b"Linux version"
KVM_ERRORS = (b"KVM internal error", b"failed to initialize kvm", b"Could not access KVM",
              b"kvm: ")
PROBE_SECONDS = 8.0


@dataclass(frozen=True)
class AccelChoice:
    """The accelerator machines get and why (shown in logs, tests and the benchmark)."""

    accel: str
    reason: str


_lock = threading.Lock()
_decided: dict[tuple[str, str], AccelChoice] = {}


def choose(setting: str, kernel: Path, device: Path = KVM_DEVICE) -> AccelChoice:
    """Return the accelerator for ``setting`` ("auto", "kvm" or "tcg").

    "auto" probes once per process and kernel (:func:`probe`); the others are taken as set.
    Raises nothing.
    """
    if setting != "auto":
        return AccelChoice(setting, "set by qemu_accel")
    key = (str(kernel), str(device))
    with _lock:
        if key not in _decided:
            _decided[key] = probe(kernel, device)
            log.info("QEMU accelerator: %s (%s)", _decided[key].accel, _decided[key].reason)
        return _decided[key]


def probe(kernel: Path, device: Path = KVM_DEVICE, seconds: float = PROBE_SECONDS,
          accel: str = "kvm") -> AccelChoice:
    """Boot ``kernel`` under ``accel`` (KVM) for up to ``seconds``; return it if the kernel
    printed its banner without a KVM error, else tcg with the reason. Raises nothing."""
    if not os.access(device, os.R_OK | os.W_OK):
        return AccelChoice("tcg", f"{device} is missing or not usable by this user")
    if not kernel.is_file():
        return AccelChoice("tcg", f"no kernel to probe KVM with ({kernel})")
    try:
        output = _run_until_banner(probe_command(kernel, accel), seconds)
    except OSError as exc:
        return AccelChoice("tcg", f"cannot run QEMU to probe KVM: {exc}")
    return verdict(output, accel)


def verdict(output: bytes, accel: str = "kvm") -> AccelChoice:
    """Return the choice a probe of ``accel`` leads to from its console and QEMU output.

    Raises nothing."""
    for error in KVM_ERRORS:
        if error in output:
            line = next((x for x in output.decode(errors="replace").splitlines()
                         if error.decode() in x), error.decode())
            return AccelChoice("tcg", f"{accel} probe failed: {line.strip()[:200]}")
    if BOOTED in output:
        return AccelChoice(accel, f"{accel} probe booted the kernel")
    return AccelChoice("tcg", f"{accel} probe: the kernel printed nothing in time")


def probe_command(kernel: Path, accel: str = "kvm") -> list[str]:
    """Return the probe's QEMU command: the kernel alone, serial console on stdout, no reboot."""
    return ["qemu-system-x86_64", "-accel", accel, "-m", "256", "-nographic", "-no-reboot",
            "-monitor", "none", "-serial", "stdio", "-nodefaults", "-kernel", str(kernel),
            "-append", "console=ttyS0 panic=-1"]


def _run_until_banner(command: list[str], seconds: float) -> bytes:
    """Run ``command`` until its output shows the banner or a KVM error, it exits, or
    ``seconds`` pass; kill it; return its output (stdout and stderr). Raises OSError."""
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = b""
    deadline = time.monotonic() + seconds
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(process.stdout, selectors.EVENT_READ)
            while (left := deadline - time.monotonic()) > 0:
                if not selector.select(left):
                    continue
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    break
                output += chunk
                if BOOTED in output or any(error in output for error in KVM_ERRORS):
                    break
    finally:
        process.kill()
        process.wait(10)
        process.stdout.close()
    return output
