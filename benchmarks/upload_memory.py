"""Server memory while a large file is uploaded through My Data and over WebDAV.

    .venv/bin/python benchmarks/upload_memory.py [--size-mib 1024] [--runs 3]

Starts the portal as a real server process (werkzeug, threaded, on 127.0.0.1 with a temporary
var folder and SQLite), signs in through the real form, and uploads a file generated on the fly
(a 1 MiB block repeated, never the whole file in memory) through the My Data upload endpoint
and as a WebDAV PUT with an app password. Before each upload the server's peak RSS is reset
(``/proc/<pid>/clear_refs``); after it, VmHWM from ``/proc/<pid>/status`` is the peak while
receiving. Prints each run and the medians.

Why werkzeug and not ``daaas serve``: waitress refuses bodies of 1 GiB and more by default
(``max_request_body_size``), and spools every body to a temporary file before the portal sees
it, which would hide what the portal's own code does with the stream.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from base64 import b64encode
from pathlib import Path

import requests

from daaas.portal.auth.service import get_user
from daaas.portal.config import load_settings
from daaas.portal.db import make_engine, make_session_factory, unit_of_work
from daaas.portal.demo import create_demo_users
from daaas.portal.migrate import upgrade
from daaas.portal.storage.app_passwords import create_app_password

MIB = 1024 * 1024
SERVE = """
import sys
from werkzeug.serving import make_server
from daaas.portal import create_app
make_server("127.0.0.1", int(sys.argv[1]), create_app(), threaded=True).serve_forever()
"""


class Generated:
    """A file-like body of ``size`` bytes made from one repeated 1 MiB block."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.block = os.urandom(MIB)

    def read(self, amount: int = MIB) -> bytes:
        amount = min(amount if amount > 0 else MIB, MIB, self.left)
        self.left -= amount
        return self.block[:amount]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def status_kib(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    assert match, field
    return int(match.group(1))


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def upload(port: int, path: str, size: int, headers: dict[str, str]) -> tuple[int, float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600, blocksize=MIB)
    started = time.monotonic()
    connection.request("PUT" if path.startswith("/dav/") else "POST", path,
                       body=Generated(size),
                       headers={"Content-Length": str(size),
                                "Content-Type": "application/octet-stream", **headers})
    answer = connection.getresponse()
    answer.read()
    elapsed = time.monotonic() - started
    connection.close()
    return answer.status, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    size = args.size_mib * MIB
    with tempfile.TemporaryDirectory(prefix="daaas-upload-bench-") as folder:
        var = Path(folder) / "var"
        url = f"sqlite:///{folder}/bench.sqlite"
        env = {**os.environ, "DAAAS_VAR_DIR": str(var), "DAAAS_DATABASE_URL": url,
               "DAAAS_SECRET_KEY": "benchmark", "DAAAS_STORAGE_QUOTA_GB": "20"}
        engine = make_engine(url)
        upgrade(engine)
        settings = load_settings({"database_url": url, "var_dir": str(var)}, environ={})
        with unit_of_work(make_session_factory(engine)) as db:
            create_demo_users(db, settings)
            password = create_app_password(db, get_user(db, "scientist"), "bench")[1]
        port = free_port()
        server = subprocess.Popen([sys.executable, "-c", SERVE, str(port)], env=env,
                                  stderr=subprocess.DEVNULL)
        try:
            results = measure(server.pid, port, size, args.runs, password, var)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(10)
    print(f"\nfile {args.size_mib} MiB, {args.runs} runs, medians:")
    for name, rows in results.items():
        growth = statistics.median(r[1] - r[0] for r in rows)
        speed = statistics.median(r[2] for r in rows)
        print(f"  {name:<10} peak RSS before {statistics.median(r[0] for r in rows) / 1024:.1f} "
              f"MiB, peak during upload {statistics.median(r[1] for r in rows) / 1024:.1f} MiB "
              f"(+{growth / 1024:.1f} MiB), {speed:.0f} MiB/s")


def measure(pid: int, port: int, size: int, runs: int, password: str,
            var: Path) -> dict[str, list[tuple[int, int, float]]]:
    base = f"http://127.0.0.1:{port}"
    web = sign_in(base)
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', web.get(f"{base}/my-data/").text)
    assert csrf
    cookie = "; ".join(f"{k}={v}" for k, v in web.cookies.items())
    dav_auth = "Basic " + b64encode(f"scientist:{password}".encode()).decode()
    session_headers = {"Cookie": cookie, "X-CSRF-Token": csrf.group(1),
                       "Accept": "application/json"}
    kinds: dict[str, tuple[str, dict[str, str]]] = {
        "My Data": ("/my-data/-/upload?root=storage&path=&name=bench-{run}.bin", session_headers),
        "WebDAV": ("/dav/bench-{run}.bin", {"Authorization": dav_auth}),
    }
    upload(port, "/dav/warm-up.bin", MIB, {"Authorization": dav_auth})  # load WsgiDAV's code
    results: dict[str, list[tuple[int, int, float]]] = {name: [] for name in kinds}
    for run in range(1, runs + 1):
        for name, (template, headers) in kinds.items():
            path = template.format(run=run)
            reset_peak(pid)
            before = status_kib(pid, "VmHWM")
            status, elapsed = upload(port, path, size, headers)
            peak = status_kib(pid, "VmHWM")
            assert status in (200, 201, 204), (name, status)
            stored = var / "storage" / "scientist" / f"bench-{run}.bin"
            assert stored.stat().st_size == size
            stored.unlink()
            speed = size / MIB / elapsed
            results[name].append((before, peak, speed))
            print(f"run {run} {name:<8} peak RSS {before / 1024:.1f} -> {peak / 1024:.1f} MiB "
                  f"(+{(peak - before) / 1024:.1f}), {elapsed:.1f} s, {speed:.0f} MiB/s",
                  flush=True)
    return results


def sign_in(base: str) -> requests.Session:
    deadline = time.monotonic() + 30
    web = requests.Session()
    while True:
        try:
            form = web.get(f"{base}/sign-in", timeout=5).text
            break
        except requests.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token
    web.post(f"{base}/sign-in", data={"username": "scientist", "password": "scientist-demo",
                                      "csrf_token": token.group(1)}, timeout=30)
    return web


if __name__ == "__main__":
    main()
