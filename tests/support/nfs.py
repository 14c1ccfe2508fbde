"""A real NFS server for tests: NFS-Ganesha (Debian's ``nfs-ganesha`` + ``nfs-ganesha-vfs``) in
user space, NFSv4 only, on 127.0.0.1 and a free port, with its config, log, pid and recovery
folders in a temporary folder of its own. No rpcbind (NFSv4 needs one TCP port) and no D-Bus
(Ganesha logs that it has none and carries on). Nothing of it is left running after ``stop``.
Its log's CRIT/MAJ lines about D-Bus, rpcbind ("Cannot register NFS V4 on TCP") and the
Kerberos keytab of NFSv4 callbacks are expected here and harmless.

Usage::

    from tests.support.nfs import Export, NfsServer

    with NfsServer([Export(data_dir, "/data"),                      # read-only, root squashed
                    Export(home, "/storage/alice", read_only=False,
                           squash="all", anon_uid=2001, anon_gid=2001)]) as server:
        server.port                    # the TCP port (2049 inside a VM behind a guest forward)
        server.source("/data")         # "127.0.0.1:/data", a mount source
        server.url("/data/a.txt")      # libnfs URL for nfs-cat / nfs-ls / nfs-cp
        server.log_text()              # Ganesha's log, for failure messages

``extra_config`` is more Ganesha configuration, included as it is (a site's own EXPORT blocks,
e.g. what ``daaas storage exports`` writes); ``server.reload(text)`` replaces it and makes Ganesha
re-read its exports (SIGHUP). ``NfsServer.unavailable()`` says why it cannot run here (None
when it can); ``nfs_server`` is the same as a generator for a pytest fixture.

A kernel NFS client mounts an export with
``mount -t nfs4 -o port=<port>,vers=4.1 127.0.0.1:/data /mnt`` (or, in a QEMU guest with
``guestfwd=tcp:10.0.2.100:2049-tcp:127.0.0.1:<port>``, ``10.0.2.100:/data``): Ganesha sends
owners as bare numbers (``Only_Numeric_Owners``), so a VM's account with the same uid as the
folder's owner on the host writes as itself without an idmap domain.

For a portal's VM (the real-VM tier): serve the user's storage exactly as the portal's own
exports say, plus the experiment's data read-only, and forward the guest's NFS port to it::

    from daaas.portal.storage.exports import ganesha_exports, user_exports
    blocks = ganesha_exports(user_exports(settings, [user], create=True), ["127.0.0.1"],
                             insecure_ports=True)   # or: daaas storage exports --insecure-ports
    with NfsServer([Export(archive, "/data")], extra_config=blocks) as server:
        settings: local_storage_export = "10.0.2.100:/storage/{username}",
                  experiment_export = "nfs", experiment_export_source = "10.0.2.100:/data/...",
                  qemu_guest_forwards = f"10.0.2.100:2049=127.0.0.1:{server.port}"

QEMU's guest forward connects from the host's 127.0.0.1 and from any port, hence
``--clients 127.0.0.1`` and ``--insecure-ports`` (the exports otherwise require a port below
1024, which only a client's root can open).

Why Ganesha runs as root: its VFS back end opens files by handle (``open_by_handle_at``,
``CAP_DAC_READ_SEARCH``), as any NFS server serving real folders must.
"""

from __future__ import annotations

import ctypes
import glob
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Literal

GANESHA = "ganesha.nfsd"
PR_SET_PDEATHSIG = 1
NFS_PROGRAM, NFS_V4 = 100003, 4
_SQUASH = {"none": "No_Root_Squash", "root": "Root_Squash", "all": "All_Squash"}
_READY_LINE = "NFS SERVER INITIALIZED"
_RELOADED_LINE = "Reread exports complete"


class NfsServerError(RuntimeError):
    """The server did not start or answer; the message carries the end of Ganesha's log."""


@dataclass(frozen=True)
class Export:
    """One host folder the server exports.

    ``pseudo`` is its path in the NFSv4 name space (what a client mounts: ``server:/pseudo``).
    ``squash``: ``"root"`` maps a client's root to the anonymous ids, ``"all"`` maps every
    client uid/gid to them (``anon_uid``/``anon_gid``: the folder's owner, so whoever writes,
    the files belong to that one account), ``"none"`` trusts the client's ids.
    ``clients``: addresses or networks allowed (empty: any client that reaches the port).
    ``privileged_port``: accept only clients on a port below 1024 (root's), as production
    exports should; off by default because QEMU's guest forwards connect from any port.
    """

    path: Path
    pseudo: str
    read_only: bool = True
    squash: Literal["none", "root", "all"] = "root"
    anon_uid: int = 65534
    anon_gid: int = 65534
    clients: tuple[str, ...] = field(default=())
    privileged_port: bool = False

    def block(self, export_id: int) -> str:
        """Return this export's Ganesha EXPORT block. Raises ValueError for a relative pseudo
        path or a path with a quote."""
        if not self.pseudo.startswith("/") or '"' in f"{self.path}{self.pseudo}":
            raise ValueError(f"export {self.path} as {self.pseudo!r}: pseudo must be absolute")
        access = "RO" if self.read_only else "RW"
        clients = ""
        if self.clients:
            clients = (f"  CLIENT {{ Clients = {', '.join(self.clients)}; "
                       f"Access_Type = {access}; }}\n")
            access = "None"
        return (f"EXPORT {{\n  Export_Id = {export_id};\n  Path = \"{self.path}\";\n"
                f"  Pseudo = \"{self.pseudo}\";\n  Protocols = 4;\n  Transports = TCP;\n"
                f"  Access_Type = {access};\n  Squash = {_SQUASH[self.squash]};\n"
                f"  Anonymous_Uid = {self.anon_uid};\n  Anonymous_Gid = {self.anon_gid};\n"
                f"  SecType = sys;\n  PrivilegedPort = {str(self.privileged_port).lower()};\n"
                f"{clients}  FSAL {{ Name = VFS; }}\n}}\n")


def ganesha_config(exports: Sequence[Export], *, host: str, port: int, recovery: Path,
                   plugins: Path, name: str) -> str:
    """Return a complete ganesha.conf: NFSv4 only over TCP on ``host:port``, no NLM, RQUOTA or
    UDP, no grace period (a fresh test server has no clients to wait for), numeric owners,
    recovery under ``recovery``. Raises ValueError as :meth:`Export.block`."""
    core = (f"NFS_CORE_PARAM {{\n  Protocols = 4;\n  NFS_Port = {port};\n"
            f"  Bind_addr = {host};\n  Enable_NLM = false;\n  Enable_RQUOTA = false;\n"
            f"  Enable_UDP = false;\n  Plugins_Dir = \"{plugins}\";\n"
            f"  Dbus_Name_Prefix = \"{name}\";\n}}\n"
            f"NFSv4 {{\n  Graceless = true;\n  Lease_Lifetime = 10;\n  RecoveryBackend = fs;\n"
            f"  RecoveryRoot = \"{recovery}\";\n  Only_Numeric_Owners = true;\n}}\n"
            "NFS_KRB5 {\n  Active_krb5 = false;\n}\n")
    return core + "".join(export.block(i) for i, export in enumerate(exports, start=1))


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it when the process that started it dies (a test run
    killed with SIGKILL leaves no NFS server behind). Linux only; raises nothing."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def plugins_dir() -> Path | None:
    """Return the folder holding Ganesha's VFS back end (libfsalvfs.so), or None. Raises
    nothing."""
    found = sorted(glob.glob("/usr/lib/*/ganesha/libfsalvfs.so") +
                   glob.glob("/usr/lib*/ganesha/libfsalvfs.so"))
    return Path(found[0]).parent if found else None


def free_port(host: str = "127.0.0.1") -> int:
    """Return a TCP port nothing listens on at the moment. Raises OSError."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def rpc_null(host: str, port: int, timeout: float = 2.0) -> bool:
    """Send an ONC RPC NULL call to NFS version 4 over TCP; return True when the server accepts
    it (an NFS server that answers). Raises nothing."""
    xid = int.from_bytes(os.urandom(4), "big")
    # call: xid, CALL, rpcvers 2, prog, vers, proc 0, cred AUTH_NONE, verf AUTH_NONE
    body = struct.pack(">IIIIIIIIII", xid, 0, 2, NFS_PROGRAM, NFS_V4, 0, 0, 0, 0, 0)
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">I", 0x80000000 | len(body)) + body)
            reply = b""
            while len(reply) < 4 + 24:
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                reply += chunk
    except OSError:
        return False
    rxid, mtype, stat = struct.unpack(">III", reply[4:16])
    accept = struct.unpack(">I", reply[24:28])[0]  # after verifier flavor + length (0)
    return rxid == xid and mtype == 1 and stat == 0 and accept == 0


class NfsServer:
    """A running NFS-Ganesha serving ``exports`` on ``host``:``port`` (a free port when 0).

    ``start()`` (or ``with``) starts it and returns once an RPC NULL call to NFSv4 is answered
    (raises NfsServerError with the log's end when it is not within ``timeout`` seconds, after
    stopping it); ``stop()`` ends it (SIGTERM, then SIGKILL after 10 s) and removes its folder.
    Should the process that started it die without ``stop()`` (a test run killed), Ganesha gets
    SIGTERM too (``PR_SET_PDEATHSIG``): start it from a thread that lives as long as it should
    (the main thread, as pytest fixtures run).
    """

    def __init__(self, exports: Sequence[Export], *, host: str = "127.0.0.1", port: int = 0,
                 timeout: float = 30.0, extra_config: str = "") -> None:
        self.exports = tuple(exports)
        self.extra_config = extra_config
        self.host = host
        self.port = port
        self.timeout = timeout
        self.folder: Path | None = None
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def unavailable() -> str | None:
        """Return why Ganesha cannot run on this host (to skip with), None when it can.
        Raises nothing."""
        if shutil.which(GANESHA) is None:
            return ("nfs-ganesha is not installed: apt-get install --no-install-recommends "
                    "nfs-ganesha nfs-ganesha-vfs")
        if plugins_dir() is None:
            return "nfs-ganesha-vfs (libfsalvfs.so) is not installed"
        if os.geteuid() != 0:
            return "Ganesha's VFS back end needs root (open_by_handle_at)"
        return None

    def start(self) -> NfsServer:
        """Start Ganesha and wait until it answers; return self. Raises NfsServerError."""
        reason = self.unavailable()
        if reason:
            raise NfsServerError(reason)
        fixed = self.port != 0
        for _attempt in range(1 if fixed else 3):
            if not fixed:
                self.port = free_port(self.host)
            try:
                self._start_once()
                return self
            except NfsServerError:
                self.stop()
                if fixed or _attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _start_once(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="daaas-nfs-"))
        (self.folder / "recovery").mkdir()
        plugins = plugins_dir()
        assert plugins is not None
        config = self.folder / "ganesha.conf"
        (self.folder / "extra.conf").write_text(self.extra_config, encoding="utf-8")
        config.write_text(ganesha_config(self.exports, host=self.host, port=self.port,
                                         recovery=self.folder / "recovery", plugins=plugins,
                                         name=f"daaas{os.getpid()}x{self.port}")
                          + f'%include "{self.folder / "extra.conf"}"\n', encoding="utf-8")
        self.process = subprocess.Popen(
            [GANESHA, "-F", "-f", str(config), "-L", str(self.log_path),
             "-p", str(self.folder / "ganesha.pid"), "-N", "NIV_EVENT"],
            cwd=self.folder, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise NfsServerError(f"ganesha.nfsd exited with {self.process.returncode}:\n"
                                     + self.log_text(tail=30))
            if _READY_LINE in self.log_text() and rpc_null(self.host, self.port):
                return
            time.sleep(0.1)
        raise NfsServerError(f"ganesha.nfsd did not answer on {self.host}:{self.port} within "
                             f"{self.timeout:.0f} s:\n" + self.log_text(tail=30))

    def reload(self, extra_config: str) -> None:
        """Replace the extra configuration (EXPORT blocks of a site's own) and make Ganesha
        re-read its exports (SIGHUP), as an administrator does after ``daaas storage exports``;
        return once it says it has. Raises NfsServerError when it does not within
        ``timeout`` seconds, RuntimeError when not running."""
        if self.process is None or self.folder is None:
            raise RuntimeError("the NFS server is not started")
        done = self.log_text().count(_RELOADED_LINE)
        self.extra_config = extra_config
        (self.folder / "extra.conf").write_text(extra_config, encoding="utf-8")
        self.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + self.timeout
        while self.log_text().count(_RELOADED_LINE) <= done:
            if time.monotonic() > deadline:
                raise NfsServerError("Ganesha did not re-read its exports:\n"
                                     + self.log_text(tail=20))
            time.sleep(0.05)

    def stop(self) -> None:
        """End the server (its whole process group) and remove its folder; idempotent. Raises
        nothing."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            except ProcessLookupError:
                pass
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None

    @property
    def running(self) -> bool:
        """Return True while the Ganesha process runs. Raises nothing."""
        return self.process is not None and self.process.poll() is None

    @property
    def log_path(self) -> Path:
        """Return the path of Ganesha's log file. Raises RuntimeError before start."""
        if self.folder is None:
            raise RuntimeError("the NFS server is not started")
        return self.folder / "ganesha.log"

    def log_text(self, tail: int = 0) -> str:
        """Return Ganesha's log (its last ``tail`` lines when given; "" before it exists).
        Raises nothing."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except (OSError, RuntimeError):
            return ""
        return "\n".join(text.splitlines()[-tail:]) if tail else text

    def source(self, pseudo: str) -> str:
        """Return the mount source of an export as this host reaches it: ``127.0.0.1:/pseudo``.
        Raises nothing."""
        return f"{self.host}:{pseudo}"

    def url(self, path: str, *, uid: int | None = None, gid: int | None = None) -> str:
        """Return a libnfs URL (nfs-ls, nfs-cat, nfs-cp) for ``path`` in the pseudo name space,
        NFSv4 on this port, optionally as ``uid``/``gid`` (AUTH_SYS). Raises nothing."""
        query = f"version=4&nfsport={self.port}"
        if uid is not None:
            query += f"&uid={uid}"
        if gid is not None:
            query += f"&gid={gid}"
        return f"nfs://{self.host}/{path.lstrip('/')}?{query}"

    def __enter__(self) -> NfsServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.stop()


@contextmanager
def nfs_server(exports: Sequence[Export], **options: float | int | str) -> Iterator[NfsServer]:
    """Yield a started :class:`NfsServer` (keyword options as its constructor's) and stop it
    afterwards, whatever happened. Raises NfsServerError when it cannot start."""
    server = NfsServer(exports, **options)  # type: ignore[arg-type]
    with server:
        yield server
