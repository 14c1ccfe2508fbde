"""The storage quota holds when uploads run at the same time (My Data and WebDAV), on SQLite
and PostgreSQL, through a real threading server.

Each race is played out deterministically over raw HTTP connections: upload A sends its
headers (with Content-Length) and waits, mid-body, until the portal has opened its temporary
file, i.e. has admitted it; upload B then arrives whole. Together they do not fit: B must be
refused, A must complete, and nothing partial may be left in the storage. A portal that only
compared each upload with the storage's use, as before, lets both in.
"""

from __future__ import annotations

import http.client
import json
import re
import time
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask

from daaas.portal.auth.service import get_user
from daaas.portal.db import unit_of_work
from daaas.portal.storage.app_passwords import create_app_password
from tests.support.web import served

GIB, MIB, KIB = 1024**3, 1024**2, 1024
ROOM = MIB  # what is left of the 1 GiB quota once big.bin is there
PART = ".upload-"


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    return {**settings_override, "storage_quota_gb": 1}


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    """The portal served by a threading werkzeug server; yields its base URL."""
    with served(app) as base:
        yield base


@pytest.fixture
def home(app: Flask, server: str) -> Path:
    """scientist's storage folder holding a sparse big.bin (counts, costs no disk), so that
    exactly ROOM bytes of the quota are left."""
    path = Path(app.extensions["daaas"].settings.var_path) / "storage" / "scientist"
    path.mkdir(parents=True, exist_ok=True)
    with open(path / "big.bin", "wb") as big:
        big.truncate(GIB - ROOM)
    return path


def names(home: Path) -> list[str]:
    return sorted(p.name for p in home.iterdir())


def wait_for_part(home: Path) -> None:
    """Wait until an upload's temporary file is in the storage (the portal admitted it)."""
    deadline = time.monotonic() + 10
    while not any(p.name.startswith(PART) for p in home.iterdir()):
        assert time.monotonic() < deadline, f"no temporary file appeared: {names(home)}"
        time.sleep(0.02)


def wait_for_no_part(home: Path) -> None:
    deadline = time.monotonic() + 10
    while any(p.name.startswith(PART) for p in home.iterdir()):
        assert time.monotonic() < deadline, f"a temporary file was left: {names(home)}"
        time.sleep(0.02)


def started(server: str, method: str, path: str, length: int,
            headers: dict[str, str]) -> http.client.HTTPConnection:
    """Open a request and send its headers (announcing ``length`` bytes), but no body."""
    conn = http.client.HTTPConnection(server.removeprefix("http://"), timeout=30)
    conn.putrequest(method, path)
    for name, value in {**headers, "Content-Length": str(length)}.items():
        conn.putheader(name, value)
    conn.endheaders()
    return conn


# --- My Data -----------------------------------------------------------------------------


class Browser:
    """A signed-in browser's cookie and CSRF token, for raw connections too."""

    def __init__(self, server: str) -> None:
        self.server, self.session = server, requests.Session()
        page = self.session.get(f"{server}/sign-in", timeout=30).text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token
        assert self.session.post(f"{server}/sign-in", timeout=30, data={
            "username": "scientist", "password": "scientist-demo",
            "csrf_token": token.group(1)}).ok
        my_data = self.session.get(f"{server}/my-data/", timeout=30).text
        csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', my_data)
        assert csrf
        self.csrf = csrf.group(1)

    def headers(self, accept: str = "application/json") -> dict[str, str]:
        cookies = "; ".join(f"{c.name}={c.value}" for c in self.session.cookies)
        return {"Cookie": cookies, "X-CSRF-Token": self.csrf, "Accept": accept,
                "Content-Type": "application/octet-stream"}

    def upload(self, name: str, body: bytes) -> requests.Response:
        return self.session.post(f"{self.server}/my-data/-/upload?path=&name={name}",
                                 data=body, headers=self.headers(), timeout=60)


def test_two_uploads_at_once_over_the_quota_one_is_refused(server: str, home: Path) -> None:
    browser = Browser(server)
    size = 700 * KIB  # one fits in the 1 MiB left, two do not
    first = started(server, "POST", "/my-data/-/upload?path=&name=a.bin", size,
                    browser.headers())
    first.send(b"a" * (100 * KIB))
    wait_for_part(home)
    second = browser.upload("b.bin", b"b" * size)
    assert second.status_code == 507, second.text
    assert "Not enough room in your storage" in second.json()["error"]["message"]
    first.send(b"a" * (size - 100 * KIB))
    answer = first.getresponse()
    assert answer.status == 201, answer.read()
    assert names(home) == ["a.bin", "big.bin"]
    assert (home / "a.bin").stat().st_size == size
    # the finished upload's reservation is gone: what is left can be used
    assert browser.upload("c.bin", b"c" * (ROOM - size)).status_code == 201
    assert browser.upload("d.bin", b"d").status_code == 507
    assert names(home) == ["a.bin", "big.bin", "c.bin"]


def test_an_upload_cut_off_midway_leaves_nothing_and_frees_its_reservation(
        server: str, home: Path) -> None:
    browser = Browser(server)
    cut = started(server, "POST", "/my-data/-/upload?path=&name=cut.bin", 900 * KIB,
                  browser.headers())
    cut.send(b"x" * (10 * KIB))
    wait_for_part(home)
    cut.sock.close()  # type: ignore[union-attr]  # the browser tab closed
    wait_for_no_part(home)
    assert names(home) == ["big.bin"]
    assert browser.upload("whole.bin", b"w" * ROOM).status_code == 201


def test_an_upload_larger_than_the_whole_quota_is_told_so(server: str, home: Path) -> None:
    browser = Browser(server)
    too_big = started(server, "POST", "/my-data/-/upload?path=&name=huge.bin", GIB + 1,
                      browser.headers())
    answer = too_big.getresponse()  # answered before any body is sent
    assert answer.status == 413
    error = json.loads(answer.read())["error"]
    assert error["code"] == "upload_too_large"
    assert "larger than your whole storage quota (1.0 GiB)" in error["message"]
    page_request = started(server, "POST", "/my-data/-/upload?path=&name=huge.bin", GIB + 1,
                           browser.headers(accept="text/html"))
    page = page_request.getresponse()
    text = page.read().decode()
    assert page.status == 413
    status = re.search(r'<div id="upload-status"[^>]*>([^<]*)</div>', text)
    assert status and "larger than your whole storage quota" in status.group(1), text[:2000]
    assert 'id="upload-form"' in text  # the My Data page, kept, not an error page
    assert names(home) == ["big.bin"]


# --- WebDAV ------------------------------------------------------------------------------


def dav_auth(app: Flask) -> dict[str, str]:
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        _row, secret = create_app_password(db, get_user(db, "scientist"), "test")
    return {"Authorization": "Basic " + b64encode(f"scientist:{secret}".encode()).decode()}


def test_two_puts_at_once_over_the_quota_one_is_refused(app: Flask, server: str,
                                                        home: Path) -> None:
    auth = dav_auth(app)
    size = 700 * KIB
    first = started(server, "PUT", "/dav/a.bin", size, auth)
    first.send(b"a" * (100 * KIB))
    wait_for_part(home)
    second = requests.put(f"{server}/dav/b.bin", data=b"b" * size, headers=auth, timeout=60)
    assert second.status_code == 507
    assert "Not enough room in your storage" in second.text
    first.send(b"a" * (size - 100 * KIB))
    answer = first.getresponse()
    assert answer.status == 201, answer.read()
    assert names(home) == ["a.bin", "big.bin"]
    assert (home / "a.bin").read_bytes() == b"a" * size


def test_a_put_without_length_is_stopped_at_the_quota_and_leaves_nothing(
        app: Flask, server: str, home: Path) -> None:
    auth = dav_auth(app)

    def body() -> Iterator[bytes]:  # chunked: no Content-Length to refuse early
        for _ in range(20):
            yield b"z" * (100 * KIB)

    answer = requests.put(f"{server}/dav/stream.bin", data=body(), headers=auth, timeout=60)
    assert answer.status_code == 507, answer.text
    wait_for_no_part(home)
    assert names(home) == ["big.bin"]
    fits = requests.put(f"{server}/dav/stream.bin", data=iter([b"z" * (ROOM // 2)]),
                        headers=auth, timeout=60)
    assert fits.status_code == 201
    assert names(home) == ["big.bin", "stream.bin"]


def test_a_put_over_the_room_or_the_whole_quota_is_told_so(app: Flask, server: str,
                                                           home: Path) -> None:
    auth = dav_auth(app)
    (home / "keep.txt").write_text("old")
    over = requests.put(f"{server}/dav/keep.txt", data=b"k" * (ROOM + 1), headers=auth,
                        timeout=60)
    assert over.status_code == 507 and "Not enough room" in over.text
    assert over.headers["Content-Type"].startswith("text/plain")
    assert (home / "keep.txt").read_text() == "old"  # an overwrite refused keeps the file
    huge = started(server, "PUT", "/dav/huge.bin", GIB + 1, auth).getresponse()
    text = huge.read().decode()
    assert huge.status == 413 and "larger than your whole storage quota" in text
    assert huge.getheader("Content-Type", "").startswith("text/plain")
    assert names(home) == ["big.bin", "keep.txt"]
