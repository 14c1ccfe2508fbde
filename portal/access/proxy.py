"""Start and stop the one desktop proxy (websockify) that carries every browser desktop.

``daaas serve`` calls :func:`start_proxy` once. The proxy (:mod:`daaas.portal.access.rfbproxy`,
websockify with an RFB security proxy) runs as a child process in its own process group,
spends each websocket's one-time ``?token=``, signs in to the machine's VNC server itself and
offers the browser only RFB security type None. It logs to ``<var_dir>/log/websockify.log``.
The database URL and the secret key reach it through a mode-600 file, never the command line
or the environment (``DAAAS_*`` and ``OS_*`` variables are left out of its environment), and
the file is removed as soon as the proxy listens. The proxy exits by itself if the process that
started it dies without calling ``stop()``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from daaas import package_path
from daaas.portal.access.tokenplugin import ProxySecrets
from daaas.portal.config import Settings, resolve_secret_key

PROXY_MODULE = "daaas.portal.access.rfbproxy"
#: Environment variables the proxy does not get: the portal's settings and cloud credentials.
PRIVATE_ENV_PREFIXES = ("DAAAS_", "OS_")
LAUNCHER_ENV = "WEBSOCKIFY_LAUNCHER_PID"  # not DAAAS_*: settings reject unknown DAAAS_ keys
#: The folder that holds the ``daaas`` package (the checkout, or site-packages).
PROJECT_ROOT = package_path("daaas").parent
START_TIMEOUT = 15.0


class ProxyError(RuntimeError):
    """The desktop proxy could not be started; the message says why and what to do."""


@dataclass
class ProxyProcess:
    """A running websockify; ``stop()`` ends it and removes its token source file."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    source_file: Path
    log_file: Path
    log_offset: int = 0

    def running(self) -> bool:
        """Return True while the websockify process is alive. Raises nothing."""
        return self.process.poll() is None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop websockify and its per-connection children (SIGTERM, then SIGKILL).

        Returns None; raises nothing (an already-ended proxy is fine).
        """
        self.source_file.unlink(missing_ok=True)
        if self.process.poll() is not None:
            return
        _signal_group(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout)


def start_proxy(settings: Settings, database_url: str, *,
                timeout: float = START_TIMEOUT) -> ProxyProcess:
    """Start the desktop proxy on ``settings.host:settings.websockify_port``; return once it
    listens.

    The proxy gets ``database_url`` and the portal's secret key through a mode-600 file.

    Returns the running :class:`ProxyProcess`. Raises ProxyError when the port is already
    taken, or when websockify exits or does not listen within ``timeout`` seconds (the message
    quotes the end of its log).
    """
    host = "127.0.0.1" if settings.host in {"", "localhost"} else settings.host
    port = settings.websockify_port
    if _accepts(host, port):
        raise ProxyError(_port_taken(host, port))
    log_dir = settings.var_path / "log"
    log_dir.mkdir(parents=True, exist_ok=True)
    source = write_source(settings.var_path,
                          ProxySecrets(database_url, resolve_secret_key(settings)))
    log_file = log_dir / "websockify.log"
    offset = log_file.stat().st_size if log_file.exists() else 0
    proxy = ProxyProcess(_spawn(host, port, source, log_file), host, port, source, log_file,
                         offset)
    try:
        _wait_until_listening(proxy, timeout)
    except ProxyError:
        proxy.stop()
        raise
    source.unlink()  # the proxy read it before it started listening
    return proxy


def write_source(var_dir: Path, secrets: ProxySecrets) -> Path:
    """Write the proxy's secrets (JSON) to a new mode-600 file under ``var_dir``; return its
    path.

    Raises OSError when ``var_dir`` cannot be created or written.
    """
    var_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="websockify-", suffix=".source", dir=var_dir)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:  # mkstemp creates it mode 600
        handle.write(secrets.to_json() + "\n")
    return Path(name)


def proxy_environment() -> dict[str, str]:
    """Return the proxy's environment: the portal's, without its settings and cloud
    credentials (``DAAAS_*``, ``OS_*``), with the launcher's pid and the project on
    PYTHONPATH. Raises nothing.
    """
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(PRIVATE_ENV_PREFIXES)}
    env[LAUNCHER_ENV] = str(os.getpid())
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                       env.get("PYTHONPATH")]))
    return env


def _spawn(host: str, port: int, source: Path, log_file: Path) -> subprocess.Popen[bytes]:
    listen = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    command = [sys.executable, "-m", PROXY_MODULE, "--source", str(source), listen]
    env = proxy_environment()
    with log_file.open("ab") as log:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, cwd=PROJECT_ROOT,
                                start_new_session=True)


def _wait_until_listening(proxy: ProxyProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proxy.running():
            raise ProxyError(_exited(proxy))
        if _accepts(proxy.host, proxy.port):
            return
        time.sleep(0.05)
    raise ProxyError(f"The desktop proxy (websockify) did not listen on {proxy.host}:"
                     f"{proxy.port} within {timeout:.0f} s. See {proxy.log_file}:\n"
                     f"{_tail(proxy)}")


def _accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _exited(proxy: ProxyProcess) -> str:
    tail = _tail(proxy)
    if "Address already in use" in tail:
        return _port_taken(proxy.host, proxy.port)
    return (f"The desktop proxy (websockify) stopped at start with exit code "
            f"{proxy.process.returncode}. The end of {proxy.log_file}:\n{tail}")


def _port_taken(host: str, port: int) -> str:
    return (f"The desktop proxy cannot listen on {host}:{port}: another program already uses "
            "that port. Stop it, or choose a free port with the websockify_port setting "
            "(DAAAS_WEBSOCKIFY_PORT).")


def _tail(proxy: ProxyProcess, lines: int = 15) -> str:
    try:
        with proxy.log_file.open("rb") as log:
            log.seek(proxy.log_offset)
            text = log.read().decode("utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(nothing logged)"


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)
