"""Keystone sign-in against the REAL Keystone of ``.ci/openstack.sh``.

Each test makes its own Keystone users and projects (with the test cloud's admin) and removes
them after. Skipped locally (with the reason) when DAAAS_TEST_OPENSTACK_CLOUD is unset; in CI
they run.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flask import Flask
from sqlalchemy import select

from daaas.portal import create_app
from daaas.portal.auth.backends import IDENTITY_BACKENDS, WRONG_CREDENTIALS
from daaas.portal.auth.keystone import IdentityUnavailable, KeystoneIdentityBackend, map_groups
from daaas.portal.auth.models import User
from daaas.portal.config import ConfigError, load_settings
from daaas.portal.errors import SignInFailed
from tests.openstack import support
from tests.support.web import sign_in


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
    backend = IDENTITY_BACKENDS.build(load_settings(
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


@pytest.fixture
def beamline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A fresh project with a member, and the portal's Keystone accounts in a clouds.yaml.

    ``reader`` holds only the ``reader`` role on the system (what docs/admin.md asks of the
    portal's account); ``member-only`` is a plain project member, whom Keystone's policy does
    not let list role assignments. OS_CLIENT_CONFIG_FILE points at that clouds.yaml for the
    test (openstacksdk's own variable).
    """
    conn = support.admin_connection()
    idp = conn.identity
    auth_url = conn.config.config["auth"]["auth_url"]
    tag = uuid.uuid4().hex[:6]
    project = idp.create_project(name=f"ks-mx-{tag}", domain_id="default")
    made, clouds = [], {}
    member_role = idp.find_role("member", ignore_missing=False)
    for kind in ("scientist", "reader", "member-only"):
        name, password = f"ks-{kind}-{tag}", secrets.token_urlsafe(12)
        user = idp.create_user(name=name, password=password, domain_id="default")
        made.append(user)
        if kind == "reader":
            idp.assign_system_role_to_user(user, idp.find_role("reader", ignore_missing=False),
                                           "all")
            scope = {"system_scope": "all"}
        else:
            idp.assign_project_role_to_user(project, user, member_role)
            scope = {"project_name": project.name, "project_domain_name": "Default"}
        clouds[kind] = {"auth_type": "password", "identity_api_version": 3,
                        "auth": {"auth_url": auth_url, "username": name, "password": password,
                                 "user_domain_name": "Default", **scope}}
    clouds_file = tmp_path / "clouds.yaml"
    clouds_file.write_text(yaml.safe_dump({"clouds": clouds}), encoding="utf-8")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds_file))
    name, password = (clouds["scientist"]["auth"][key] for key in ("username", "password"))
    yield {"url": auth_url, "project": project.name, "user": name, "password": password}
    for user in made:
        idp.delete_user(user, ignore_missing=True)
    idp.delete_project(project, ignore_missing=True)


@pytest.mark.parametrize("keystone_cloud", ["reader", ""],
                         ids=["portal-reads-assignments", "user-scoped-tokens"])
def test_projects_and_roles_map_to_groups_through_the_portal(
        beamline: dict[str, Any], settings_override: dict[str, Any], keystone_cloud: str) -> None:
    project = beamline["project"]
    group_map = (f"{project}:member=mx-staff, {project}:reader=mx-readers, "
                 f"ks-mx-*={{project}}-all, ks-mx-*:daaas-admin=never, daaas=daaas-users")
    app: Flask = create_app({**settings_override, "identity_backend": "keystone",
                             "keystone_url": beamline["url"], "keystone_cloud": keystone_cloud,
                             "keystone_group_map": group_map})
    try:
        response = sign_in(app.test_client(), beamline["user"], beamline["password"])
        assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
        with app.extensions["daaas"].session_factory() as db:
            user = db.scalar(select(User).where(User.username == beamline["user"]))
            assert user is not None and user.identity_source == "keystone"
            # member implies reader in Keystone, so both rules match; no daaas-admin anywhere
            assert user.groups == sorted([f"{project}-all", "mx-readers", "mx-staff"])
            assert user.is_admin is False
    finally:
        app.extensions["daaas"].engine.dispose()


def test_portal_account_without_reader_role_is_identity_unavailable(
        beamline: dict[str, Any]) -> None:
    backend = IDENTITY_BACKENDS.build(load_settings(
        {"identity_backend": "keystone", "keystone_url": beamline["url"],
         "keystone_cloud": "member-only"}, environ={}))
    with pytest.raises(IdentityUnavailable) as caught:
        backend.authenticate(None, beamline["user"], beamline["password"])  # type: ignore[arg-type]
    assert "Forbidden" in caught.value.log_message


def test_unknown_keystone_cloud_stops_start_up(beamline: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"keystone_cloud.*no-such-cloud"):
        IDENTITY_BACKENDS.build(load_settings(
            {"identity_backend": "keystone", "keystone_url": beamline["url"],
             "keystone_cloud": "no-such-cloud"}, environ={}))


def test_map_groups_patterns_and_placeholders() -> None:
    """Pure mapping rules (no Keystone needed): patterns, roles, placeholders, default."""
    mine = {"mx-2026": ["member", "reader"], "daaas": ["reader"], "other": []}
    assert map_groups(mine, {}) == ("daaas", "mx-2026", "other")
    assert map_groups(mine, {"mx-*:member": "mx-users", "*:reader": "{project}-{role}s",
                             "other": "misc", "nope:*": "never"}) == (
        "daaas-readers", "misc", "mx-2026-readers", "mx-users")
    assert map_groups(mine, {"mx-*:admin": "mx-admins"}) == ()
