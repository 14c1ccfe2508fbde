"""My Data's New folder form: a name that cannot be used ('..', 'a/b', empty, over-long) or is
taken is told next to the folder-name field on the same page (the listing kept, what was typed
kept, the error's status), and nothing is created; an API caller still gets the JSON error."""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from tests.support.web import csrf_from, sign_in

TOO_LONG = "a name can be at most 255 bytes"
BAD_NAMES = {"..": "is not a valid name", "a/b": "is not a valid name",
             "": "is not a valid name", "   ": "is not a valid name",
             "x" * 256: TOO_LONG, "é" * 128: TOO_LONG}


@pytest.fixture
def storage(app: Flask, client: FlaskClient) -> Path:
    """The scientist's storage folder, with one folder in it, signed in."""
    sign_in(client, "scientist", "scientist-demo")
    client.get("/my-data/")
    folder = Path(app.extensions["daaas"].settings.var_path) / "storage" / "scientist"
    (folder / "results").mkdir()
    return folder


def make_folder(client: FlaskClient, name: str, **headers: str) -> tuple[int, str]:
    answer = client.post("/my-data/-/mkdir", headers=headers, data={
        "csrf_token": csrf_from(client, "/my-data/"), "root": "storage", "path": "",
        "name": name})
    return answer.status_code, answer.get_data(as_text=True)


def field_error(page: str) -> str:
    """The text of the error shown next to the folder-name field ('' when there is none)."""
    found = re.search(r'<p id="new-folder-error" class="field-note error" role="alert">(.*?)</p>',
                      page, re.DOTALL)
    return html.unescape(found.group(1)) if found else ""


@pytest.mark.parametrize("name", list(BAD_NAMES), ids=["dotdot", "slash", "empty", "blank",
                                                        "256-ascii", "256-bytes-utf8"])
def test_a_bad_folder_name_is_told_next_to_the_field(client: FlaskClient, storage: Path,
                                                     name: str) -> None:
    status, page = make_folder(client, name)

    assert status == 400
    assert BAD_NAMES[name] in field_error(page)
    # the same page: My Data with its listing and the form, the field marked and what was typed
    assert "<h1>My Data</h1>" in page and 'data-name="results"' in page
    field = re.search(r'<input id="new-folder"[^>]*>', page, re.DOTALL)
    assert field is not None
    assert 'aria-invalid="true"' in field.group(0)
    assert 'aria-describedby="new-folder-error"' in field.group(0)
    assert f'value="{html.escape(name)}"' in field.group(0)
    # the form holds the error (next to the control), not the top of the page
    form = page.split('action="/my-data/-/mkdir"', 1)[1].split("</form>", 1)[0]
    assert 'id="new-folder-error"' in form
    assert sorted(p.name for p in storage.iterdir()) == ["results"]  # nothing created


def test_a_taken_name_is_told_in_place_too(client: FlaskClient, storage: Path) -> None:
    status, page = make_folder(client, "results")
    assert status == 409
    assert field_error(page) == "'results' already exists here."


def test_a_good_name_creates_the_folder_without_an_error(client: FlaskClient,
                                                         storage: Path) -> None:
    status, _ = make_folder(client, "run 7")
    assert status == 302
    assert (storage / "run 7").is_dir()
    page = client.get("/my-data/").get_data(as_text=True)
    assert field_error(page) == "" and 'aria-invalid' not in page


def test_an_api_caller_still_gets_the_json_error(client: FlaskClient, storage: Path) -> None:
    answer = client.post("/my-data/-/mkdir", headers={"Accept": "application/json"}, data={
        "csrf_token": csrf_from(client, "/my-data/"), "root": "storage", "path": "",
        "name": ".."})
    assert answer.status_code == 400
    assert "is not a valid name" in answer.get_json()["error"]["message"]
