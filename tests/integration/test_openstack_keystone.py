"""Keystone sign-in against the REAL Keystone of ``.ci/openstack.sh``.

Each test makes its own Keystone users (with the test cloud's admin) and removes them after.
Skipped locally (with the reason) when DAAAS_TEST_OPENSTACK_CLOUD is unset; in CI they run.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from daaas.portal import create_app
from daaas.portal.auth.backends import WRONG_CREDENTIALS, make_identity_backend
from daaas.portal.auth.keystone import IdentityUnavailable, KeystoneIdentityBackend
from daaas.portal.auth.models import User
from daaas.portal.config import load_settings
from daaas.portal.errors import SignInFailed
from tests.conftest import sign_in
from tests.openstack import support


@pytest.fixture
def keystone() -> Iterator[dict[str, Any]]:
    """Two fresh Keystone users in project daaas: a member and a daaas-admin holder."""
    conn = support.admin_connection()
    idp = conn.identity
    project = idp.find_project("daaas", ignore_missing=False)
    made = []
    users = {}
    for kind, role in (("member", "member"), ("admin", "daaas-admin")):
        name, password = f"ks-{kind}-{uuid.uuid4().hex[:6]}", secrets.token_urlsafe(12)
        user = idp.create_user(name=name, password=password, domain_id="default")
        idp.assign_project_role_to_user(project, user, idp.find_role(role, ignore_missing=False))
        made.append(user)
        users[kind] = (name, password)
    auth_url = conn.config.config["auth"]["auth_url"]
    yield {"url": auth_url, **users}
    for user in made:
        idp.delete_user(user, ignore_missing=True)


def test_member_signs_in_with_projects_and_no_admin(keystone: dict[str, Any]) -> None:
    name, password = keystone["member"]
    identity = KeystoneIdentityBackend(keystone["url"]).authenticate(None, name, password)  # type: ignore[arg-type]
    assert identity.username == name
    assert identity.groups == ("daaas",)
    assert identity.is_admin is False


def test_configured_role_maps_to_admin(keystone: dict[str, Any]) -> None:
    name, password = keystone["admin"]
    backend = make_identity_backend(load_settings(
        {"identity_backend": "keystone", "keystone_url": keystone["url"]}, environ={}))
    assert backend.authenticate(None, name, password).is_admin is True  # type: ignore[arg-type]
    other_role = KeystoneIdentityBackend(keystone["url"], admin_role="no-such-role")
    assert other_role.authenticate(None, name, password).is_admin is False  # type: ignore[arg-type]


def test_wrong_password_and_unknown_user_are_refused(keystone: dict[str, Any]) -> None:
    backend = KeystoneIdentityBackend(keystone["url"])
    name, _ = keystone["member"]
    for user, password in ((name, "wrong-password"), ("ks-nobody-x", "whatever-pw")):
        with pytest.raises(SignInFailed) as caught:
            backend.authenticate(None, user, password)  # type: ignore[arg-type]
        assert caught.value.user_message == WRONG_CREDENTIALS


def test_unreachable_keystone_is_identity_unavailable() -> None:
    with pytest.raises(IdentityUnavailable) as caught:
        KeystoneIdentityBackend("http://127.0.0.1:9/v3", timeout=3).authenticate(
            None, "someone", "some-password")  # type: ignore[arg-type]
    assert "identity service" in caught.value.user_message


def test_sign_in_through_the_portal_creates_local_user(keystone: dict[str, Any],
                                                       settings_override: dict[str, Any]) -> None:
    app: Flask = create_app({**settings_override, "identity_backend": "keystone",
                             "keystone_url": keystone["url"]})
    try:
        client = app.test_client()
        name, password = keystone["admin"]
        assert sign_in(client, name, "wrong-password").status_code in (400, 401, 200)
        response = sign_in(client, name, password)
        assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
        with app.extensions["daaas"].session_factory() as db:
            user = db.scalar(select(User).where(User.username == name))
            assert user is not None and user.identity_source == "keystone"
            assert user.is_admin and user.groups == ["daaas"] and user.uid >= 20000
            assert user.password_hash is None
    finally:
        app.extensions["daaas"].engine.dispose()
