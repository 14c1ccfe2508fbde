"""Identity backends: who checks a user name and password.

The views never talk to a backend directly; :func:`daaas.portal.auth.service.sign_in` does. The
``identity_backend`` setting names one in :data:`IDENTITY_BACKENDS` (``local``, ``keystone``;
OIDC will be a further subclass) or any ``module:Class``; only the chosen one is imported.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

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


#: The identity backends by ``identity_backend`` name; Keystone is imported only when chosen.
IDENTITY_BACKENDS: Registry[IdentityBackend] = Registry(
    "identity backend", "identity_backend", IdentityBackend,
    {"local": "daaas.portal.auth.backends:LocalIdentityBackend",
     "keystone": "daaas.portal.auth.keystone:KeystoneIdentityBackend"})
