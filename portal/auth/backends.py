"""Identity backends: who checks a user name and password.

The views never talk to a backend directly; :func:`daaas.portal.auth.service.sign_in` does. The
``identity_backend`` setting names one in :data:`IDENTITY_BACKENDS` (``local``, ``keystone``,
``oidc``) or any ``module:Class``; only the chosen one is imported. A backend that signs people
in elsewhere (OpenID Connect) says so with :attr:`IdentityBackend.external_sign_in` and brings
its own routes (:meth:`IdentityBackend.blueprint`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash

from daaas.portal.auth.models import User
from daaas.portal.backends import Registry
from daaas.portal.config import Settings
from daaas.portal.errors import SignInFailed

WRONG_CREDENTIALS = "Wrong user name or password. Check both and try again."
# Checked when the user does not exist so a wrong name costs as long as a wrong password.
_DUMMY_HASH = "scrypt:32768:8:1$AAAAAAAAAAAAAAAA$" + "0" * 128


@dataclass(frozen=True)
class Identity:
    """Who a backend says the person is; the portal maps this to a local User row."""

    username: str
    display_name: str = ""
    email: str = ""
    groups: tuple[str, ...] = field(default_factory=tuple)
    is_admin: bool = False


class IdentityBackend(ABC):
    """Checks credentials against some authority."""

    name: ClassVar[str]
    #: Label of a sign-in button that leads elsewhere (an OpenID provider); empty: none.
    external_sign_in: str = ""
    #: Whether the user-name-and-password form is offered and accepted.
    password_sign_in: bool = True

    @property
    def password_source(self) -> str:
        """The ``identity_source`` of accounts signed in with a password here (the backend's
        name; OIDC: ``local``, its password form being for local accounts)."""
        return self.name

    def form_targets(self) -> tuple[str, ...]:
        """URLs whose origins the sign-in and sign-out forms may redirect to (the CSP's
        ``form-action``); none by default."""
        return ()

    def blueprint(self) -> Any:
        """A Flask blueprint with the backend's own routes, or None (the default)."""
        return None

    def logout_redirect(self, id_token: str, return_to: str) -> str | None:
        """Where the browser goes after the portal's sign-out to end a session at the
        identity provider too, or None (the default: nowhere). Raises nothing."""
        return None

    @classmethod
    def from_settings(cls, settings: Settings) -> IdentityBackend:
        """Return a backend configured from the settings (default: no options)."""
        return cls()

    @abstractmethod
    def authenticate(self, db: Session, username: str, password: str) -> Identity:
        """Return the identity for these credentials.

        Raises :class:`SignInFailed` for wrong credentials or a disabled account, and
        :class:`daaas.portal.errors.PortalError` subclasses when the authority cannot be reached.
        """


class LocalIdentityBackend(IdentityBackend):
    """Accounts kept in the portal's own database with salted scrypt hashes."""

    name = "local"

    def authenticate(self, db: Session, username: str, password: str) -> Identity:
        """Return the identity of the local account; raises SignInFailed on any mismatch."""
        user = db.scalar(select(User).where(User.username == username))
        stored = user.password_hash if user is not None and user.password_hash else _DUMMY_HASH
        matches = check_password_hash(stored, password)
        if user is None or not matches or not user.is_active or not user.password_hash:
            raise SignInFailed(WRONG_CREDENTIALS, f"local sign-in refused for {username!r}")
        return Identity(username=user.username, display_name=user.display_name,
                        email=user.email, groups=tuple(user.groups), is_admin=user.is_admin)


#: The identity backends by ``identity_backend`` name; Keystone and OIDC are imported only when
#: chosen.
IDENTITY_BACKENDS: Registry[IdentityBackend] = Registry(
    "identity backend", "identity_backend", IdentityBackend,
    {"local": "daaas.portal.auth.backends:LocalIdentityBackend",
     "keystone": "daaas.portal.auth.keystone:KeystoneIdentityBackend",
     "oidc": "daaas.portal.auth.oidc:OidcIdentityBackend"})
