"""My Data through real requests: browse, upload (streamed), download, new folder, rename,
delete with confirmation, quota, read-only experiment data, and paths that try to escape."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from daaas.portal import create_app
from tests.support.web import csrf_from, sign_in

SECRET = b"top secret: not for the portal's users\n"


@pytest.fixture
def signed_in(client: FlaskClient) -> FlaskClient:
    sign_in(client, "scientist", "scientist-demo")
    return client


@pytest.fixture
def var(app: Flask) -> Path:
    return Path(app.extensions["daaas"].settings.var_path)


@pytest.fixture
def secret(var: Path, signed_in: FlaskClient) -> Iterator[Path]:
    """A file next to the user's storage folder that no request may read or change."""
    signed_in.get("/my-data/")  # creates var/storage/scientist
    path = var / "storage" / "secret.txt"
    path.write_bytes(SECRET)
    before = path.stat().st_mtime_ns
    yield path
    assert path.read_bytes() == SECRET and path.stat().st_mtime_ns == before
    assert sorted(p.name for p in (var / "storage").iterdir()) == ["scientist", "secret.txt"]


def token(client: FlaskClient) -> str:
    return csrf_from(client, "/my-data/")


def upload(client: FlaskClient, query: str, body: bytes, **headers: str) -> Any:
    return client.post(f"/my-data/-/upload?{query}", data=body,
                       headers={"X-CSRF-Token": token(client), "Accept": "application/json",
                                "Content-Type": "application/octet-stream", **headers})


def post(client: FlaskClient, action: str, **form: str) -> Any:
    return client.post(f"/my-data/-/{action}", data={"csrf_token": token(client), **form})


def test_my_data_is_in_the_navigation(signed_in: FlaskClient) -> None:
    page = signed_in.get("/experiments").get_data(as_text=True)
    assert 'href="/my-data/"' in page and ">My Data<" in page
    assert signed_in.get("/my-data/").status_code == 200


def test_browse_upload_download_mkdir_rename_delete(signed_in: FlaskClient, var: Path) -> None:
    home = var / "storage" / "scientist"
    assert post(signed_in, "mkdir", root="storage", path="", name="results").status_code == 302
    assert (home / "results").is_dir()
    body = os.urandom(3 * 1024 * 1024 + 17)  # over the app's 1 MiB form limit: streamed
    answer = upload(signed_in, "root=storage&path=results&name=run%201.dat", body)
    assert answer.status_code == 201, answer.get_data(as_text=True)
    assert answer.get_json() == {"name": "run 1.dat", "size": len(body)}
    assert (home / "results" / "run 1.dat").read_bytes() == body
    assert not [p for p in (home / "results").iterdir() if p.name.startswith(".upload-")]

    page = signed_in.get("/my-data/storage/results/").get_data(as_text=True)
    assert "run 1.dat" in page and "3.0 MiB" in page
    assert re.search(r'aria-label="Folder".*Storage</a>.*results', page, re.S)
    top = signed_in.get("/my-data/").get_data(as_text=True)
    assert "results/" in top and "3.0 MiB of 100.0 GiB" in top

    got = signed_in.get("/my-data/storage/results/run%201.dat")
    assert got.status_code == 200 and got.data == body
    assert "attachment" in got.headers["Content-Disposition"]
    part = signed_in.get("/my-data/storage/results/run%201.dat", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.data == body[10:20]

    renamed = post(signed_in, "rename", root="storage", path="results/run 1.dat",
                   new_name="run-1.dat")
    assert renamed.status_code == 302 and (home / "results" / "run-1.dat").exists()
    assert "Renamed to" in signed_in.get(renamed.headers["Location"]).get_data(as_text=True)
    deleted = post(signed_in, "delete", root="storage", path="results", confirm="yes")
    assert deleted.status_code == 302 and not (home / "results").exists()


def test_delete_needs_confirmation(signed_in: FlaskClient, var: Path) -> None:
    post(signed_in, "mkdir", root="storage", path="", name="keep")
    (var / "storage" / "scientist" / "keep" / "a.txt").write_text("a")
    unconfirmed = post(signed_in, "delete", root="storage", path="keep")
    assert unconfirmed.status_code == 302
    assert "/my-data/-/delete?" in unconfirmed.headers["Location"]
    assert (var / "storage" / "scientist" / "keep" / "a.txt").exists()
    question = signed_in.get(unconfirmed.headers["Location"]).get_data(as_text=True)
    assert "Delete keep?" in question and "everything in it" in question
    assert 'name="confirm" value="yes"' in question
    assert post(signed_in, "delete", root="storage", path="keep", confirm="yes").status_code == 302
    assert not (var / "storage" / "scientist" / "keep").exists()


def test_actions_need_the_csrf_token(signed_in: FlaskClient, var: Path) -> None:
    refused = signed_in.post("/my-data/-/upload?name=x.txt", data=b"x",
                             headers={"Content-Type": "application/octet-stream"})
    assert refused.status_code == 403
    assert signed_in.post("/my-data/-/mkdir", data={"name": "x"}).status_code == 403
    home = var / "storage" / "scientist"
    assert not home.exists() or list(home.iterdir()) == []


def test_upload_over_quota_is_refused(settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override, "storage_quota_gb": 1})
    client = app.test_client()
    sign_in(client, "scientist", "scientist-demo")
    home = Path(settings_override["var_dir"]) / "storage" / "scientist"
    home.mkdir(parents=True)  # written before the portal first measures the storage (the
    # figure is kept between requests: storage/usage.py)
    with open(home / "big.bin", "wb") as big:  # sparse: counts against the quota, costs no disk
        big.truncate(1024**3 - 100)
    page = client.get("/my-data/").get_data(as_text=True)
    assert 'data-room="100"' in page
    answer = upload(client, "path=&name=more.bin", b"x" * 101)
    assert answer.status_code == 507
    assert "Not enough room in your storage" in answer.get_json()["error"]["message"]
    assert sorted(p.name for p in home.iterdir()) == ["big.bin"]
    assert upload(client, "path=&name=fits.bin", b"x" * 100).status_code == 201
    app.extensions["daaas"].engine.dispose()


def _experiment(app: Flask, visit: str) -> tuple[int, Path]:
    with app.app_context():
        rt = app.extensions["daaas"]
        found = {i.visit_id: i for i in rt.experiments.investigations_for("scientist")}
        info = found[visit]
        return info.id, Path(info.data_path(rt.settings.experiment_data_path_template))


def test_experiment_data_is_browsable_read_only(app: Flask, signed_in: FlaskClient) -> None:
    number, data = _experiment(app, "MX31850-12")
    before = {p: p.stat().st_mtime_ns for p in data.rglob("*")}
    top = signed_in.get("/my-data/").get_data(as_text=True)
    assert f'/my-data/experiment-{number}/' in top and "MX31850-12" in top
    page = signed_in.get(f"/my-data/experiment-{number}/").get_data(as_text=True)
    assert "xtal1/" in page and "Read-only" in page and "upload-form" not in page
    listing = signed_in.get(f"/my-data/experiment-{number}/xtal1/").get_data(as_text=True)
    assert "xtal1_0001.cbf" in listing
    got = signed_in.get(f"/my-data/experiment-{number}/xtal1/xtal1_0001.cbf")
    assert got.status_code == 200 and got.data == (data / "xtal1" / "xtal1_0001.cbf").read_bytes()

    root = f"experiment-{number}"
    refused = [upload(signed_in, f"root={root}&path=xtal1&name=new.cbf", b"x"),
               post(signed_in, "delete", root=root, path="xtal1/xtal1_0001.cbf", confirm="yes"),
               post(signed_in, "rename", root=root, path="xtal1", new_name="other"),
               post(signed_in, "mkdir", root=root, path="", name="new"),
               signed_in.get(f"/my-data/-/delete?root={root}&path=xtal1")]
    assert [r.status_code for r in refused] == [403] * 5
    assert "read-only" in refused[0].get_json()["error"]["message"]
    assert {p: p.stat().st_mtime_ns for p in data.rglob("*")} == before


def test_other_peoples_experiments_are_not_found(app: Flask, signed_in: FlaskClient) -> None:
    with app.app_context():
        rt = app.extensions["daaas"]
        theirs = rt.experiments.investigations_for("neutron")[0].id
    assert signed_in.get(f"/my-data/experiment-{theirs}/").status_code == 404
    assert signed_in.get("/my-data/nothing/").status_code == 404


BROWSE_ESCAPES = ["../secret.txt", "%2e%2e/secret.txt", "..%2fsecret.txt",
                  "%2e%2e%2fsecret.txt", "%252e%252e%252fsecret.txt", "%252E%252E/secret.txt",
                  "..%5csecret.txt", "..%255csecret.txt", "x/../../secret.txt",
                  "secret.txt%00", "%2fetc%2fpasswd", "%252fetc%252fpasswd"]


def test_browse_and_download_cannot_leave_the_storage(signed_in: FlaskClient,
                                                      secret: Path) -> None:
    for escape in BROWSE_ESCAPES:
        answer = signed_in.get(f"/my-data/storage/{escape}")
        if answer.status_code == 308:  # '//' merged into '/' by the router: still inside
            assert urlsplit(answer.headers["Location"]).path.startswith("/my-data/storage/")
            answer = signed_in.get(answer.headers["Location"])
        assert answer.status_code in (400, 404), (escape, answer.status_code)
        assert SECRET not in answer.data and b"root:" not in answer.data


NAME_ESCAPES = ["..%2fsecret.txt", "%2e%2e%2fsecret.txt", "%252e%252e%252fsecret.txt",
                "..%5csecret.txt", "%2fsecret.txt", "secret.txt%00", "..", "%2e%2e",
                "%25252e%25252e%25252fsecret.txt"]
FOLDER_ESCAPES = ["..", "%2e%2e", "..%2f..", "%252e%252e", "%2fetc", "..%5c", "%00", "a%2f..%2f.."]


def test_upload_name_cannot_leave_the_storage(signed_in: FlaskClient, secret: Path) -> None:
    for escape in NAME_ESCAPES:
        answer = upload(signed_in, f"root=storage&path=&name={escape}", b"overwritten")
        assert answer.status_code == 400, (escape, answer.status_code)
        assert "not a valid" in answer.get_json()["error"]["message"]
    assert list(secret.parent.joinpath("scientist").iterdir()) == []


def test_folder_actions_cannot_leave_the_storage(signed_in: FlaskClient, secret: Path) -> None:
    for escape in FOLDER_ESCAPES:
        raw = unquote(escape)  # form fields arrive decoded once
        answers = [
            upload(signed_in, f"root=storage&path={escape}&name=secret.txt", b"overwritten"),
            post(signed_in, "mkdir", root="storage", path=raw, name="made"),
            post(signed_in, "delete", root="storage", path=raw + "/secret.txt", confirm="yes"),
            post(signed_in, "delete", root="storage", path=raw, confirm="yes"),
            post(signed_in, "rename", root="storage", path=raw + "/secret.txt",
                 new_name="stolen.txt"),
            signed_in.get(f"/my-data/-/delete?root=storage&path={escape}")]
        assert [a.status_code for a in answers] == [400] * 6, (escape, answers)
    assert list(secret.parent.joinpath("scientist").iterdir()) == []


def test_absolute_paths_are_refused(signed_in: FlaskClient, secret: Path) -> None:
    target = str(secret)
    answers = [upload(signed_in, f"root=storage&path={secret.parent}&name=secret.txt", b"x"),
               post(signed_in, "delete", root="storage", path=target, confirm="yes"),
               post(signed_in, "rename", root="storage", path=target, new_name="x")]
    assert [a.status_code for a in answers] == [400, 400, 400]


def test_a_symlink_to_outside_is_refused(signed_in: FlaskClient, secret: Path) -> None:
    home = secret.parent / "scientist"
    (home / "escape.txt").symlink_to(secret)
    (home / "outside").symlink_to(secret.parent)
    page = signed_in.get("/my-data/").get_data(as_text=True)
    assert "link outside" in page and 'href="/my-data/storage/escape.txt"' not in page
    for path in ("escape.txt", "outside/", "outside/secret.txt"):
        answer = signed_in.get(f"/my-data/storage/{path}")
        assert answer.status_code == 404 and SECRET not in answer.data
    assert upload(signed_in, "path=outside&name=secret.txt", b"x").status_code == 404
    assert upload(signed_in, "path=outside&name=new.txt", b"x").status_code == 404
    assert post(signed_in, "mkdir", root="storage", path="outside", name="x").status_code == 404
    # The link itself may be removed; its target is untouched.
    assert post(signed_in, "delete", root="storage", path="escape.txt",
                confirm="yes").status_code == 302
    assert post(signed_in, "delete", root="storage", path="outside",
                confirm="yes").status_code == 302
    assert list(home.iterdir()) == []


def test_a_symlink_inside_the_storage_is_followed(signed_in: FlaskClient, var: Path) -> None:
    home = var / "storage" / "scientist"
    signed_in.get("/my-data/")
    (home / "real").mkdir()
    (home / "real" / "f.txt").write_text("inside")
    (home / "alias").symlink_to(home / "real")
    assert signed_in.get("/my-data/storage/alias/f.txt").data == b"inside"


def test_app_passwords_are_created_shown_once_and_revoked(signed_in: FlaskClient) -> None:
    created = post(signed_in, "app-passwords", name="work laptop")
    page = created.get_data(as_text=True)
    assert created.status_code == 201 and "shown only this once" in page
    secret = re.search(r'<code class="secret"[^>]*>(dav_[^<]+)</code>', page)
    assert secret and "work laptop" in page
    again = signed_in.get("/my-data/").get_data(as_text=True)
    assert "work laptop" in again and secret.group(1) not in again
    assert "net use Z:" in again and "Connect to Server" in again and "davfs" in again
    number = re.search(r'data-app-password="(\d+)"', again)
    assert number
    revoked = signed_in.post(f"/my-data/-/app-passwords/{number.group(1)}/revoke",
                             data={"csrf_token": token(signed_in)})
    assert revoked.status_code == 302
    after = signed_in.get(revoked.headers["Location"]).get_data(as_text=True)
    assert "work laptop&#39; revoked" in after and "data-app-password" not in after


def test_signed_out_visitors_are_sent_to_sign_in(client: FlaskClient) -> None:
    answer = client.get("/my-data/")
    assert answer.status_code == 302 and "/sign-in" in answer.headers["Location"]
