"""WebDAV at /dav/ through a real server and a real WebDAV client (webdavclient3): app
passwords, per-user confinement, quota, and paths that try to escape."""

from __future__ import annotations

import http.client
import os
from base64 import b64encode
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from webdav3.client import Client
from webdav3.exceptions import WebDavException

from daaas.portal import create_app
from daaas.portal.auth.service import get_user
from daaas.portal.db import unit_of_work
from daaas.portal.storage.app_passwords import create_app_password, revoke_app_password
from tests.support.web import served

SECRET = b"top secret: next to the storage folders\n"


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    """The portal served by werkzeug on 127.0.0.1; yields its base URL."""
    with served(app) as base:
        yield base


def app_password(app: Flask, username: str) -> tuple[int, str]:
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        row, secret = create_app_password(db, get_user(db, username), "test")
        return row.id, secret


def dav(server: str, username: str, password: str) -> Client:
    return Client({"webdav_hostname": server, "webdav_root": "/dav/", "webdav_login": username,
                   "webdav_password": password, "webdav_timeout": 30})


@pytest.fixture
def var(app: Flask) -> Path:
    return Path(app.extensions["daaas"].settings.var_path)


@pytest.fixture
def secret(var: Path) -> Iterator[Path]:
    (var / "storage").mkdir(parents=True, exist_ok=True)
    path = var / "storage" / "secret.txt"
    path.write_bytes(SECRET)
    before = path.stat().st_mtime_ns
    yield path
    assert path.read_bytes() == SECRET and path.stat().st_mtime_ns == before


def test_a_real_client_lists_uploads_downloads_moves_and_deletes(
        app: Flask, server: str, var: Path, tmp_path: Path) -> None:
    _id, password = app_password(app, "scientist")
    client = dav(server, "scientist", password)
    assert client.list() == []
    local = tmp_path / "spectrum.dat"
    local.write_bytes(b"0123456789" * 100_000)
    client.mkdir("results")
    client.upload_sync(remote_path="results/spectrum.dat", local_path=str(local))
    home = var / "storage" / "scientist"
    assert (home / "results" / "spectrum.dat").read_bytes() == local.read_bytes()
    assert client.list("results") == ["results/", "spectrum.dat"] or \
        "spectrum.dat" in client.list("results")
    back = tmp_path / "back.dat"
    client.download_sync(remote_path="results/spectrum.dat", local_path=str(back))
    assert back.read_bytes() == local.read_bytes()
    client.move(remote_path_from="results/spectrum.dat", remote_path_to="results/renamed.dat")
    assert (home / "results" / "renamed.dat").exists()
    assert not (home / "results" / "spectrum.dat").exists()
    client.clean("results")
    assert list(home.iterdir()) == []


def test_webdav_sees_what_my_data_shows(app: Flask, server: str, var: Path) -> None:
    home = var / "storage" / "scientist"
    home.mkdir(parents=True)
    (home / "from-portal.txt").write_text("hello")
    _id, password = app_password(app, "scientist")
    assert "from-portal.txt" in dav(server, "scientist", password).list()
    got = requests.get(f"{server}/dav/from-portal.txt", auth=("scientist", password), timeout=10)
    assert got.status_code == 200 and got.text == "hello"


def test_wrong_sign_in_and_revoked_app_passwords_get_401(app: Flask, server: str) -> None:
    password_id, password = app_password(app, "scientist")
    url = f"{server}/dav/"
    ok = requests.request("PROPFIND", url, auth=("scientist", password),
                          headers={"Depth": "1"}, timeout=10)
    assert ok.status_code == 207
    for auth in [None, ("scientist", "scientist-demo"),  # the sign-in password is not enough
                 ("scientist", password + "x"), ("neutron", password),
                 ("scientist", "dav_aaaaaaaaaa_" + "b" * 32)]:
        answer = requests.request("PROPFIND", url, auth=auth, headers={"Depth": "1"},
                                  timeout=10)
        assert answer.status_code == 401, auth
        assert answer.headers["WWW-Authenticate"].startswith("Basic realm=")
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        revoke_app_password(db, get_user(db, "scientist"), password_id)
    answer = requests.request("PROPFIND", url, auth=("scientist", password),
                              headers={"Depth": "1"}, timeout=10)
    assert answer.status_code == 401 and "WWW-Authenticate" in answer.headers
    with pytest.raises(WebDavException):
        dav(server, "scientist", password).list()


def test_user_a_cannot_see_user_b(app: Flask, server: str, var: Path) -> None:
    _a, alice = app_password(app, "scientist")
    _b, bob = app_password(app, "neutron")
    dav(server, "scientist", alice).mkdir("private")
    requests.put(f"{server}/dav/private/notes.txt", data=b"mine", auth=("scientist", alice),
                 timeout=10).raise_for_status()
    assert dav(server, "neutron", bob).list() == []
    for path in ["private/notes.txt", "../scientist/private/notes.txt",
                 "%2e%2e/scientist/private/notes.txt", "..%2fscientist%2fprivate%2fnotes.txt"]:
        status, body = raw(server, "GET", f"/dav/{path}", ("neutron", bob))
        assert status in (400, 403, 404) and b"mine" not in body, (path, status)
    assert (var / "storage" / "scientist" / "private" / "notes.txt").read_bytes() == b"mine"
    assert not (var / "storage" / "neutron" / "private").exists()


def raw(server: str, method: str, path: str, auth: tuple[str, str], body: bytes = b"",
        headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Send ``path`` exactly as written (no client-side clean-up of '..' or escapes)."""
    host, port = server.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    token = b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    connection.request(method, path, body=body or None,
                       headers={"Authorization": f"Basic {token}", **(headers or {})})
    answer = connection.getresponse()
    data = answer.read()
    connection.close()
    return answer.status, data


ESCAPES = ["../secret.txt", "%2e%2e/secret.txt", "..%2fsecret.txt", "%2e%2e%2fsecret.txt",
           "%252e%252e%252fsecret.txt", "..%5csecret.txt", "x/../../secret.txt",
           "secret.txt%00", "%2e%2e%5csecret.txt", "%252E%252E/secret.txt"]


def test_traversal_is_refused_over_webdav(app: Flask, server: str, secret: Path) -> None:
    _id, password = app_password(app, "scientist")
    auth = ("scientist", password)
    for escape in ESCAPES:
        for method, body in [("GET", b""), ("PROPFIND", b""), ("PUT", b"overwritten"),
                             ("DELETE", b"")]:
            status, data = raw(server, method, f"/dav/{escape}", auth, body,
                               {"Depth": "0"} if method == "PROPFIND" else None)
            assert status in (400, 403, 404), (method, escape, status)
            assert SECRET not in data
    (Path(secret.parent) / "scientist").mkdir(exist_ok=True)
    (Path(secret.parent) / "scientist" / "mine.txt").write_text("mine")
    for escape in ESCAPES:
        status, _data = raw(server, "MOVE", "/dav/mine.txt", auth,
                            headers={"Destination": f"{server}/dav/{escape}"})
        assert status in (400, 403, 404, 502), (escape, status)
    assert sorted(p.name for p in secret.parent.iterdir()) == ["scientist", "secret.txt"]


def test_symlink_to_outside_is_refused_over_webdav(app: Flask, server: str,
                                                   secret: Path) -> None:
    home = secret.parent / "scientist"
    home.mkdir()
    (home / "escape.txt").symlink_to(secret)
    (home / "outside").symlink_to(secret.parent)
    _id, password = app_password(app, "scientist")
    auth = ("scientist", password)
    for method, path, body in [("GET", "/dav/escape.txt", b""),
                               ("PUT", "/dav/escape.txt", b"overwritten"),
                               ("GET", "/dav/outside/secret.txt", b""),
                               ("PUT", "/dav/outside/secret.txt", b"overwritten"),
                               ("PUT", "/dav/outside/new.txt", b"new"),
                               ("DELETE", "/dav/outside/secret.txt", b"")]:
        status, data = raw(server, method, path, auth, body)
        assert status in (403, 404), (method, path, status)
        assert SECRET not in data
    assert not (secret.parent / "new.txt").exists()


def test_put_over_quota_is_refused(settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override, "storage_quota_gb": 1})
    home = Path(settings_override["var_dir"]) / "storage" / "scientist"
    home.mkdir(parents=True)
    with open(home / "big.bin", "wb") as big:  # sparse: counts against the quota
        big.truncate(1024**3 - 10)
    _id, password = app_password(app, "scientist")
    with served(app) as base:
        answer = requests.put(f"{base}/dav/more.bin", data=b"x" * 11,
                              auth=("scientist", password), timeout=10)
        assert answer.status_code == 507 and "Not enough room" in answer.text
        assert not (home / "more.bin").exists()
        fits = requests.put(f"{base}/dav/fits.bin", data=b"x" * 10,
                            auth=("scientist", password), timeout=10)
        assert fits.status_code in (201, 204)
    app.extensions["daaas"].engine.dispose()


def test_webdav_can_be_switched_off(settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override, "webdav_enabled": False})
    answer = app.test_client().open("/dav/", method="PROPFIND")
    assert answer.status_code in (403, 404, 405) and "DAV" not in answer.headers
    app.extensions["daaas"].engine.dispose()


@pytest.mark.skipif(os.geteuid() != 0, reason="owners change only when the portal runs as root")
def test_what_webdav_writes_belongs_to_the_storage_owner(app: Flask, server: str,
                                                          var: Path) -> None:
    """The user's desktops run as their own account: a PUT, a new folder and a copied folder
    are theirs, never root's."""
    _id, secret = app_password(app, "scientist")
    client = dav(server, "scientist", secret)
    client.mkdir("results")
    requests.put(f"{server}/dav/results/model.pdb", data=b"ATOM", auth=("scientist", secret),
                 timeout=10).raise_for_status()
    for method, source, target in (("COPY", "results", "results-copy"),
                                   ("MOVE", "results-copy/model.pdb", "moved.pdb")):
        requests.request(method, f"{server}/dav/{source}", auth=("scientist", secret),
                         headers={"Destination": f"{server}/dav/{target}", "Depth": "infinity"},
                         timeout=10).raise_for_status()
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        user = get_user(db, "scientist")
        owner = (user.uid, user.gid)
    storage = var / "storage" / "scientist"
    for path in ("results", "results/model.pdb", "results-copy", "moved.pdb"):
        found = (storage / path).stat()
        assert (found.st_uid, found.st_gid) == owner, path
