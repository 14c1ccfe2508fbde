"""The real-VM tier's pieces, shared with benchmarks/vm_boot.py.

- :func:`build_image`: the light desktop image (elements daaas-vm-base + daaas-vnc-desktop +
  daaas-vm-access, the last also part of every real desktop image) built with mmdebstrap from
  the elements' package lists, as ``daaas images build --rootfs-only`` does, into a fresh
  folder (nothing cached between sessions; outside CI, ``DAAAS_VM_TEST_IMAGE`` names a built
  image to reuse while developing);
- :func:`start_portal`: ``daaas serve`` with the QEMU provider, its reconciler thread and
  websockify; VMs reach it at http://10.0.2.100 (QEMU forwards that to the portal's port);
- :class:`ConsoleWatch`: host times at which lines first appear on a VM's serial console;
- :func:`ssh`, :class:`XDisplay`, :func:`rdp_sign_in`: the real clients the checks use.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from PIL import Image
from playwright.sync_api import expect

from daaas.portal.providers.qemu import initrd_for, newest_cloud_kernel
from daaas.vm_images.build import (
    build_rootfs,
    host_kernel_modules,
    make_disk,
    remove_tree,
    rootfs_plan,
)
from daaas.vm_images.recipe import element_chain, load_elements
from tests.support.browser import free_port
from tests.support.paths import ROOT

CATALOGUE = Path(__file__).resolve().parent / "catalogue"
ELEMENTS = ("daaas-vnc-desktop", "daaas-vm-access")
IMAGE_VARIABLE = "DAAAS_VM_TEST_IMAGE"
PROGRAMS = ["qemu-system-x86_64", "qemu-img", "cloud-localds", "mmdebstrap", "mkfs.ext4"]
GUEST_PORTAL = "http://10.0.2.100"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def tools_problem() -> str | None:
    """Return what this host lacks for the tier (programs, the cloud kernel), or None."""
    missing = [program for program in PROGRAMS if shutil.which(program) is None]
    kernel = newest_cloud_kernel()
    if not kernel.exists() or not initrd_for(kernel).exists():
        missing.append("/boot/vmlinuz-*-cloud-amd64 and its initrd")
    if host_kernel_modules() is None:
        missing.append("/lib/modules/*-cloud-amd64")
    if os.geteuid() != 0:
        missing.append("root (mmdebstrap builds the root filesystem as root)")
    return ", ".join(missing) or None


def build_image(folder: Path) -> Path:
    """Build the light desktop image into ``folder``; return the qcow2. Raises BuildError."""
    chain = image_chain()
    plan = rootfs_plan(chain, kernel_modules=str(host_kernel_modules()))
    rootfs = folder / "rootfs"
    try:
        build_rootfs(plan, rootfs, folder / "build.log")
        return make_disk(rootfs, folder / "vm-desktop.qcow2", "2G", "qcow2",
                         folder / "build.log")
    finally:
        remove_tree(rootfs)


def image_chain() -> list[Any]:
    """Return the elements of the tier's image, dependencies first (each once)."""
    elements, chain = load_elements(), list[Any]()
    for root in ELEMENTS:
        chain += [e for e in element_chain(root, elements) if e.name not in
                  {known.name for known in chain}]
    return chain


def reused_image() -> Path | None:
    """Return the image ``DAAAS_VM_TEST_IMAGE`` names (never in CI: CI builds it), or None."""
    named = os.environ.get(IMAGE_VARIABLE, "")
    if not named or os.environ.get("CI"):
        return None
    if not Path(named).is_file():
        raise FileNotFoundError(f"{IMAGE_VARIABLE}={named} does not exist")
    return Path(named).resolve()


def start_portal(folder: Path, image: Path,
                 extra: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], str]:
    """Start `daaas serve` with the QEMU provider; return it and its URL once it answers."""
    port, proxy = free_port(), free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DAAAS_")},
           "DAAAS_PORT": str(port), "DAAAS_WEBSOCKIFY_PORT": str(proxy),
           "DAAAS_WEBSOCKIFY_URL": f"ws://127.0.0.1:{proxy}/",
           "DAAAS_PUBLIC_URL": GUEST_PORTAL, "DAAAS_VAR_DIR": str(folder / "var"),
           "DAAAS_CATALOGUE_DIR": str(CATALOGUE), "DAAAS_PROVIDER": "qemu",
           "DAAAS_QEMU_IMAGE": str(image), "DAAAS_QEMU_MAX_MACHINES": "1",
           "DAAAS_RECONCILE_INTERVAL_SECONDS": "1",
           "DAAAS_MACHINE_READY_TIMEOUT_SECONDS": "1200", **(extra or {})}
    log = (folder / "serve.log").open("w")
    process = subprocess.Popen([sys.executable, "-c", "from daaas.portal.cli import main; main()",
                                "serve"], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"daaas serve stopped; see {folder / 'serve.log'}")
        try:
            urllib.request.urlopen(url + "/sign-in", timeout=2)
            return process, url
        except OSError:
            time.sleep(0.3)
    stop_portal(process)
    raise RuntimeError("daaas serve did not answer within 120 s")


def stop_portal(process: subprocess.Popen[bytes]) -> None:
    """Stop `daaas serve` (and websockify with it) by its process group."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


def kill_leftover_vms(var_dir: Path) -> None:
    """Kill QEMU processes a failed test left under ``var_dir`` (by their recorded pid)."""
    for state in (var_dir / "qemu").glob("*/state.json"):
        pid = int(re.search(r'"pid": (\d+)', state.read_text())[1])  # type: ignore[index]
        cmdline = Path(f"/proc/{pid}/cmdline")
        if cmdline.exists() and str(var_dir).encode() in cmdline.read_bytes():
            os.killpg(pid, signal.SIGKILL)


def clean(text: str) -> str:
    """Return console text without terminal colour codes and carriage returns."""
    return ANSI.sub("", text).replace("\r", "")


class ConsoleWatch:
    """Records the host time (time.time()) at which each pattern first shows on a console."""

    PATTERNS = {"kernel": r"Linux version", "cloud_init_start": r"running 'init-local'",
                "cloud_init_final": r"running 'modules:final'",
                "agent_ready": r"daaas-bootstrap: ready",
                "cloud_init_finished": r"Cloud-init v\. \S+ finished"}

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: dict[str, float] = {}
        self.text = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        offset = 0
        while not self._stop.is_set():
            try:
                with self.path.open("rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read()
            except OSError:
                chunk = b""
            if chunk:
                offset += len(chunk)
                self.text += clean(chunk.decode("utf-8", errors="replace"))
                now = time.time()
                for name, pattern in self.PATTERNS.items():
                    if name not in self.seen and re.search(pattern, self.text):
                        self.seen[name] = now
            self._stop.wait(0.1)

    def stop(self) -> dict[str, float]:
        """Stop watching; return the times seen."""
        self._stop.set()
        self._thread.join(5)
        return self.seen


def cloud_init_problems(console: str) -> list[str]:
    """Return cloud-init's WARNING/Traceback lines and what is missing of a clean finish."""
    problems = [line for line in console.splitlines()
                if "cloud-init" in line and ("WARNING" in line or "Traceback" in line)]
    if not re.search(r"Cloud-init v\. \S+ finished", console):
        problems.append("no 'Cloud-init ... finished' line on the console")
    return problems


def api(page: Any, path: str) -> Any:
    """GET a portal JSON API path with the signed-in page's cookies; return the decoded body.

    Uses the browser context's request client, so a page reloading itself cannot interrupt it.
    """
    parts = urlsplit(page.url)
    return page.request.get(f"{parts.scheme}://{parts.netloc}{path}").json()


def desktop_problems(path: Path) -> list[str]:
    """Return what is wrong with a screenshot of the light desktop (empty: looks right)."""
    image = Image.open(path).convert("RGB")
    width, height = image.size
    colours: list[tuple[int, tuple[int, int, int]]] = \
        image.getcolors(maxcolors=1 << 24) or []  # type: ignore[assignment]
    count, dominant = max(colours)
    problems = []
    if count / (width * height) > 0.995:
        problems.append(f"one colour: {dominant} covers {count / (width * height):.1%}")
    if sum(abs(a - b) for a, b in zip(dominant, BACKGROUND, strict=True)) > 30:
        problems.append(f"background is {dominant}, not the desktop's {BACKGROUND}")
    window = sum(n for n, colour in colours if _far(colour, BACKGROUND))  # xterm, twm frame
    if window < 50_000:
        problems.append(f"no xterm window ({window} pixels off the background)")
    text = sum(n for n, colour in colours if min(colour) > 200)  # prompt and title text
    if text < 200:
        problems.append(f"no text ({text} near-white pixels)")
    return problems


BACKGROUND = (0x2E, 0x5A, 0x88)  # daaas-light-session's xsetroot colour


def _far(colour: tuple[int, int, int], other: tuple[int, int, int]) -> bool:
    return sum(abs(a - b) for a, b in zip(colour, other, strict=True)) > 60


def ssh(port: int, key: Path, user: str, command: str,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``command`` on the VM over ssh (127.0.0.1:``port``) as ``user`` with ``key`` only
    (no password, no agent, host key not kept); return the finished process."""
    return subprocess.run(
        ["ssh", "-p", str(port), "-i", str(key), "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", "-o", "PasswordAuthentication=no",
         "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "LogLevel=ERROR", "-o", "ConnectTimeout=30", f"{user}@127.0.0.1", command],
        capture_output=True, text=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)


def ssh_key(folder: Path, name: str) -> Path:
    """Make an Ed25519 key pair ``folder/name`` (+ .pub) without a passphrase; return it."""
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@vm-tier",
                    "-f", str(key)], check=True, capture_output=True)
    return key


class XDisplay:
    """An Xvnc display on this host for X clients (xfreerdp needs one even to sign in only),
    reachable by nobody (no TCP listener for X, VNC on 127.0.0.1 without a viewer)."""

    def __init__(self, folder: Path) -> None:
        self.number = next(n for n in range(60, 120)
                           if not Path(f"/tmp/.X11-unix/X{n}").exists()
                           and not Path(f"/tmp/.X{n}-lock").exists())
        self.process = subprocess.Popen(
            ["Xvnc", f":{self.number}", "-SecurityTypes", "None", "-localhost",
             "-rfbport", str(free_port()), "-nolisten", "tcp", "-geometry", "1024x768"],
            stdout=(folder / "xvnc.log").open("w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 20
        while not Path(f"/tmp/.X11-unix/X{self.number}").exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Xvnc :{self.number} did not start; see {folder}/xvnc.log")
            time.sleep(0.1)

    @property
    def display(self) -> str:
        """The DISPLAY value."""
        return f":{self.number}"

    def stop(self) -> None:
        """End Xvnc (its process group)."""
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)


def rdp_sign_in(display: str, port: int, user: str, password: str, console: Path,
                verdict: str, timeout: float = 180) -> str:
    """Connect FreeRDP's real client to xrdp at 127.0.0.1:``port`` as ``user`` with
    ``password`` (TLS, as the VM's xrdp.ini asks; xrdp signs in with the credentials the client
    sends) and wait until the VM's sign-in verifier has written one more ``verdict`` line (a
    regular expression) on its console; end the client; return the console (cleaned).

    A full connection, because ``+auth-only`` over TLS ends before xrdp asks PAM, and exits 0
    whatever the password. Raises AssertionError with the client's output when no new verdict
    shows within ``timeout``."""
    before = len(re.findall(verdict, clean(console.read_text(errors="replace"))))
    client = subprocess.Popen(
        ["xfreerdp", f"/v:127.0.0.1:{port}", f"/u:{user}", f"/p:{password}", "/cert:ignore",
         "/sec:tls", "/size:800x600", "-wallpaper", "/timeout:60000"],
        env={**os.environ, "DISPLAY": display}, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        return wait_for_line(console, verdict, before + 1, timeout)
    except AssertionError as exc:
        client.kill()
        output = client.communicate(timeout=10)[0]
        raise AssertionError(f"{exc}\nxfreerdp:\n{output[-2000:]}") from None
    finally:
        if client.poll() is None:
            os.killpg(client.pid, signal.SIGKILL)
            client.wait(10)


def wait_for_line(path: Path, pattern: str, count: int, timeout: float) -> str:
    """Wait until ``pattern`` appears ``count`` times on the console at ``path``; return the
    console (cleaned). Raises AssertionError with its tail when it does not in time."""
    deadline = time.monotonic() + timeout
    while True:
        text = clean(path.read_text(errors="replace"))
        if len(re.findall(pattern, text)) >= count:
            return text
        if time.monotonic() > deadline:
            raise AssertionError(f"{pattern!r} not seen {count} times on the console within "
                                 f"{timeout:.0f} s; its end:\n{text[-3000:]}")
        time.sleep(1)


def storage_exports(folder: Path, settings: dict[str, str], user: str) -> str:
    """Return the Ganesha exports ``daaas storage exports`` writes for the users' folders of
    the portal whose var folder is ``folder/var`` (``settings``: its DAAAS_ settings).

    Raises AssertionError when the command fails or leaves out ``user``'s folder."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DAAAS_")},
           "DAAAS_VAR_DIR": str(folder / "var"), **settings}
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "daaas"), "storage", "exports",
                           "--clients", "127.0.0.1", "--create-folders",
                           "--insecure-ports"],  # QEMU's forwards connect from any port
                          env=env, capture_output=True, text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"/storage/{user}" in done.stdout, done.stdout
    return done.stdout


def wait_for_state(page: Any, machine_id: str, timeout: float,
                   states: tuple[str, ...] = ("ready", "error"),
                   every: float = 2) -> dict[str, Any]:
    """Poll the machine's API until its state is one of ``states`` or ``timeout`` passes;
    return the machine as last read."""
    deadline = time.monotonic() + timeout
    while True:
        machine: dict[str, Any] = api(page, f"/api/v1/machines/{machine_id}")
        if machine["state"] in states or time.monotonic() > deadline:
            return machine
        time.sleep(every)


def wait_for_desktop(page: Any, shot: Path, timeout: float = 120, every: float = 2) -> None:
    """Screenshot noVNC's canvas until it shows the light desktop (:func:`desktop_problems`
    finds nothing); raises AssertionError with the problems when it does not in time."""
    deadline = time.monotonic() + timeout
    while True:
        page.locator("#screen canvas").screenshot(path=str(shot))
        problems = desktop_problems(shot)
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(every)  # the session may still be starting its xterm
    assert problems == [], problems


def add_ssh_key(page: Any, url: str, key: Path) -> None:
    """Add ``key``'s public half on the SSH-keys page (as the signed-in user) and wait until
    the page lists it (its comment, as :func:`ssh_key` made it)."""
    page.goto(f"{url}/account/ssh-keys")
    page.fill("#public-key", key.with_suffix(".pub").read_text())
    page.click("form.key-form button[type=submit]")
    expect(page.locator("#key-list")).to_contain_text(f"{key.name}@vm-tier")
