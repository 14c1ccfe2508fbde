"""Storage use is kept between requests (issue 19): with 2,000 files in a user's storage, My
Data views, WebDAV requests (their authentication included) and uploads through either make
no walk of the storage after the first measurement; an upload's bytes are added to the kept
figure, so the quota is still enforced with the new file counted; a deletion forgets the
figure and the next check measures again.

Walks are counted by wrapping the standard library's ``os.walk`` (the one way the portal
measures a folder); the project's own code is not replaced.
"""

from __future__ import annotations

import os
import re
from base64 import b64encode
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from daaas.portal.auth.service import get_user
from daaas.portal.db import unit_of_work
from daaas.portal.storage.app_passwords import create_app_password
from tests.support.web import sign_in

GIB = 1024**3
FILES = 2000


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    return {**settings_override, "storage_quota_gb": 1}


@pytest.fixture
def walks(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """Count every os.walk the portal starts; returns a function giving the count so far."""
    real, count = os.walk, [0]

    def counted(*args: Any, **kwargs: Any) -> Iterator[Any]:
        count[0] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(os, "walk", counted)
    return lambda: count[0]


def room(client: FlaskClient) -> int:
    """Return the room My Data shows (bytes)."""
    found = re.search(r'data-room="(\d+)"', client.get("/my-data/").get_data(as_text=True))
    assert found is not None
    return int(found.group(1))


def upload(client: FlaskClient, name: str, body: bytes) -> int:
    """Upload ``body`` as ``name`` through My Data; returns the status."""
    page = client.get("/my-data/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token is not None
    return client.post(f"/my-data/-/upload?path=&name={name}", data=body, headers={
        "X-CSRF-Token": token.group(1), "Accept": "application/json",
        "Content-Type": "application/octet-stream"}).status_code


def test_usage_is_kept_not_walked_per_request(app: Flask, walks: Callable[[], int]) -> None:
    home = Path(app.extensions["daaas"].settings.var_path) / "storage" / "scientist"
    for n in range(FILES):
        folder = home / f"run-{n % 20}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"frame-{n}.txt").write_bytes(b"x" * 10)
    with open(home / "big.bin", "wb") as big:  # sparse: leaves 1 MiB of the quota
        big.truncate(GIB - 1024**2 - FILES * 10)
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        _row, secret = create_app_password(db, get_user(db, "scientist"), "test")
    dav = {"Authorization": "Basic " + b64encode(f"scientist:{secret}".encode()).decode()}
    client = app.test_client()
    sign_in(client, "scientist", "scientist-demo")

    assert room(client) == 1024**2 and walks() == 1  # measured once
    for _ in range(5):
        assert room(client) == 1024**2
        assert client.get("/dav/run-0/frame-0.txt", headers=dav).status_code == 200
        assert client.open("/dav/run-1/", method="PROPFIND", headers={
            **dav, "Depth": "1"}).status_code == 207
    assert walks() == 1  # views and WebDAV (authentication included) walk nothing

    assert upload(client, "a.bin", b"a" * 1000) == 201
    assert client.put("/dav/b.bin", data=b"b" * 2000, headers=dav).status_code == 201
    assert room(client) == 1024**2 - 3000 and walks() == 1  # added, not measured
    assert client.put("/dav/b.bin", data=b"b" * 500, headers=dav).status_code == 204
    assert room(client) == 1024**2 - 1500  # the replaced file's bytes left the figure
    assert upload(client, "c.bin", b"c" * (1024**2 - 1499)) == 507  # still enforced
    assert upload(client, "c.bin", b"c" * (1024**2 - 1500)) == 201
    assert room(client) == 0 and walks() == 1

    assert client.delete("/dav/c.bin", headers=dav).status_code == 204
    assert room(client) == 1024**2 - 1500 and walks() == 2  # forgotten, measured again
