"""SSH keys on the profile: the page and the API, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization as ser
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from daaas.portal.audit.models import AuditEvent
from daaas.portal.db import unit_of_work
from daaas.portal.sshkeys.models import SshKey
from tests.support.web import assert_matches, bearer, csrf_from, sign_in


def new_key(comment: str = "alice@laptop", bits: int = 0) -> str:
    private: Any = rsa.generate_private_key(65537, bits) if bits \
        else ed25519.Ed25519PrivateKey.generate()
    line = private.public_key().public_bytes(ser.Encoding.OpenSSH, ser.PublicFormat.OpenSSH)
    return f"{line.decode()} {comment}"


def stored(app: Flask) -> list[tuple[str, str, str]]:
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        return [(k.name, k.public_key, k.fingerprint) for k in db.query(SshKey).all()]


def test_the_api_adds_lists_refuses_and_removes_keys(app: Flask, client: FlaskClient) -> None:
    headers = bearer(app, "scientist")
    key = new_key()
    added = client.post("/api/v1/ssh-keys", json={"public_key": key}, headers=headers)
    assert added.status_code == 201, added.get_data(as_text=True)
    body = added.get_json()
    assert_matches(body, "SshKeyInfo")
    assert (body["name"], body["type"]) == ("alice@laptop", "ssh-ed25519")
    assert body["public_key"] == " ".join(key.split()[:2])
    assert body["fingerprint"].startswith("SHA256:")

    again = client.post("/api/v1/ssh-keys", json={"public_key": key, "name": "second"},
                        headers=headers)
    assert again.status_code == 409
    assert "already on your profile, as 'alice@laptop'" in again.get_json()["error"]["message"]
    weak = client.post("/api/v1/ssh-keys", json={"public_key": new_key("old", 1024)},
                       headers=headers)
    assert weak.status_code == 400 and "Key 'old'" in weak.get_json()["error"]["message"]

    listed = client.get("/api/v1/ssh-keys", headers=headers).get_json()
    assert_matches(listed, "SshKeyList")
    assert [k["id"] for k in listed["keys"]] == [body["id"]]
    others = client.get("/api/v1/ssh-keys", headers=bearer(app, "neutron")).get_json()
    assert others == {"keys": []}
    assert client.delete(f"/api/v1/ssh-keys/{body['id']}",
                         headers=bearer(app, "neutron")).status_code == 404
    assert client.delete(f"/api/v1/ssh-keys/{body['id']}", headers=headers).status_code == 204
    assert stored(app) == []
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        trail = [(e.action, e.actor, e.target) for e in db.scalars(
            select(AuditEvent).where(AuditEvent.action.like("ssh_key.%")).order_by(AuditEvent.id))]
    assert trail == [("ssh_key.add", "scientist", f"ssh key {body['id']}"),
                     ("ssh_key.remove", "scientist", f"ssh key {body['id']}")]


def test_text_a_database_cannot_store_is_refused(app: Flask, client: FlaskClient) -> None:
    headers = bearer(app, "scientist")
    for body in ({"public_key": new_key("\ud800")}, {"public_key": new_key(), "name": "a\x00b"},
                 {"public_key": "ssh-ed25519 \ud800\udfff"}):
        response = client.post("/api/v1/ssh-keys", json=body, headers=headers)
        assert response.status_code == 400, (body, response.get_data(as_text=True))
    assert stored(app) == []


def test_the_same_key_may_be_on_two_profiles(app: Flask, client: FlaskClient) -> None:
    key = new_key("shared")
    for user in ("scientist", "neutron"):
        response = client.post("/api/v1/ssh-keys", json={"public_key": key},
                               headers=bearer(app, user))
        assert response.status_code == 201
    assert len(stored(app)) == 2


def test_the_page_adds_a_key_shows_it_and_removes_it(app: Flask, client: FlaskClient) -> None:
    sign_in(client, "scientist", "scientist-demo")
    assert 'href="/account/ssh-keys"' in client.get("/account").get_data(as_text=True)
    token = csrf_from(client, "/account/ssh-keys")
    key = new_key("desk")
    response = client.post("/account/ssh-keys", data={"public_key": key, "name": "office",
                                                      "csrf_token": token})
    assert response.status_code == 302
    page = client.get("/account/ssh-keys").get_data(as_text=True)
    [(name, public, fingerprint)] = stored(app)
    assert public == " ".join(key.split()[:2])
    assert name == "office" and fingerprint in page and "SSH key &#39;office&#39; added" in page

    refused = client.post("/account/ssh-keys", data={"public_key": "ssh-dss AAAA x",
                                                     "csrf_token": token})
    text = refused.get_data(as_text=True)
    assert refused.status_code == 400 and 'id="key-error"' in text and "DSA key" in text
    assert "ssh-dss AAAA x" in text  # what was typed is kept
    key_id = client.get("/api/v1/ssh-keys").get_json()["keys"][0]["id"]
    removed = client.post(f"/account/ssh-keys/{key_id}/remove", data={"csrf_token": token})
    assert removed.status_code == 302 and stored(app) == []


def test_the_page_needs_a_csrf_token_and_a_sign_in(app: Flask, client: FlaskClient) -> None:
    assert client.get("/account/ssh-keys").status_code == 302
    sign_in(client, "scientist", "scientist-demo")
    assert client.post("/account/ssh-keys", data={"public_key": new_key()}).status_code == 403
    assert stored(app) == []
