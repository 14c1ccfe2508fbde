"""OIDC claim mapping and settings, without a provider (the flow itself:
tests/integration/test_oidc.py against a real one)."""

from __future__ import annotations

from typing import Any

import pytest

from daaas.portal.auth.backends import IDENTITY_BACKENDS
from daaas.portal.auth.oidc import ClaimNames, OidcIdentityBackend
from daaas.portal.config import ConfigError, load_settings
from daaas.portal.errors import SignInFailed

ISSUER = "https://sso.example.org/realms/facility"


def _backend(**names: str) -> OidcIdentityBackend:
    return OidcIdentityBackend(ISSUER, "daaas", "s3cret-value", scopes="profile groups",
                               claims=ClaimNames(**names), admin_group="daaas-admins")


def _claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "f81d4fae", "preferred_username": "Alice", "name": "Alice Adams",
            "email": "alice@example.org", "groups": ["mx", "scientists", "mx"], **extra}


def test_claims_map_to_the_account_fields() -> None:
    identity = _backend(instruments="instruments").identity_from_claims(
        _claims(instruments="MX1"), "header.payload.signature")
    assert (identity.issuer, identity.subject, identity.username) == (ISSUER, "f81d4fae",
                                                                      "alice")
    assert identity.display_name == "Alice Adams" and identity.email == "alice@example.org"
    assert identity.groups == ("mx", "scientists") and identity.instruments == ("MX1",)
    assert identity.uid is None and identity.gid is None and identity.is_admin is False
    admin = _backend().identity_from_claims(_claims(groups=["daaas-admins"]), "t")
    assert admin.is_admin is True


def test_a_user_name_that_is_no_posix_login_is_refused() -> None:
    with pytest.raises(SignInFailed) as refused:
        _backend().identity_from_claims(_claims(preferred_username="alice@example.org"), "t")
    assert "preferred_username" in refused.value.user_message
    with pytest.raises(SignInFailed):
        _backend().identity_from_claims(_claims(preferred_username=None), "t")


@pytest.mark.parametrize(("value", "uid"), [(31001, 31001), ("31002", 31002)])
def test_uid_and_gid_from_claims(value: Any, uid: int) -> None:
    identity = _backend(uid="uidNumber").identity_from_claims(_claims(uidNumber=value), "t")
    assert (identity.uid, identity.gid) == (uid, uid)
    both = _backend(uid="u", gid="g").identity_from_claims(_claims(u=31001, g=5000), "t")
    assert (both.uid, both.gid) == (31001, 5000)


@pytest.mark.parametrize("value", [None, 0, 999, "x", True, 2 ** 31, [31001]])
def test_an_unusable_uid_claim_is_refused(value: Any) -> None:
    with pytest.raises(SignInFailed):
        _backend(uid="uidNumber").identity_from_claims(_claims(uidNumber=value), "t")


def test_openid_is_always_asked_for_and_the_secret_is_not_in_repr() -> None:
    backend = _backend()
    assert backend.scopes == "openid profile groups"
    assert "s3cret" not in repr(backend)
    assert backend.form_targets() == (ISSUER,)
    assert backend.logout_redirect("", "https://daaas.example.org/sign-in") is None
    assert backend.password_source == "local"


def test_settings_build_the_backend_and_mask_the_secret() -> None:
    settings = load_settings({"identity_backend": "oidc", "oidc_issuer": ISSUER,
                              "oidc_client_id": "daaas", "oidc_client_secret": "s3cret-value",
                              "oidc_uid_claim": "uidNumber"}, environ={})
    backend = IDENTITY_BACKENDS.build(settings)
    assert isinstance(backend, OidcIdentityBackend)
    assert backend.claims.uid == "uidNumber" and backend.external_sign_in == (
        "Sign in with your institution")
    assert settings.masked()["oidc_client_secret"] == "***"
    assert "s3cret" not in str(settings.masked())


def test_issuer_and_client_id_are_required() -> None:
    with pytest.raises(ConfigError, match="oidc_issuer"):
        OidcIdentityBackend("", "daaas", "")
    with pytest.raises(ConfigError, match="oidc_client_id"):
        OidcIdentityBackend(ISSUER, "", "")
