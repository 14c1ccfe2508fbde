"""Keystone sign-in: the user's Keystone name and password, their projects and roles.

A password authentication gives an unscoped token; the projects it may scope to become the
user's groups, and a project-scoped token per project (at most ``max_projects``) tells the
roles. Holding ``admin_role`` in any project makes the user a portal administrator; this is
re-read at every sign-in, so removing the role in Keystone removes portal admin too.
"""

from __future__ import annotations

from typing import Any

from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import session as ksa_session
from keystoneauth1.identity import v3
from sqlalchemy.orm import Session

from daaas.portal.auth.backends import WRONG_CREDENTIALS, Identity, IdentityBackend
from daaas.portal.config import Settings
from daaas.portal.errors import PortalError, SignInFailed


class IdentityUnavailable(PortalError):
    """The identity service cannot be reached or is misconfigured."""

    status_code = 503
    code = "identity_unavailable"


UNAVAILABLE = ("Sign-in is unavailable right now because the identity service cannot be "
               "reached. Try again in a few minutes.")


class KeystoneIdentityBackend(IdentityBackend):
    """Users and passwords checked by Keystone (v3) at ``auth_url``."""

    name = "keystone"

    def __init__(self, auth_url: str, user_domain: str = "Default",
                 admin_role: str = "daaas-admin", timeout: float = 10.0,
                 max_projects: int = 20) -> None:
        if not auth_url:
            raise ValueError("keystone_url must be set for keystone sign-in")
        self.auth_url, self.user_domain, self.admin_role = auth_url, user_domain, admin_role
        self.timeout, self.max_projects = timeout, max_projects

    @classmethod
    def from_settings(cls, settings: Settings) -> KeystoneIdentityBackend:
        """Return a backend for ``keystone_url``; raises ValueError if it is empty."""
        return cls(settings.keystone_url, settings.keystone_user_domain,
                   settings.keystone_admin_role)

    def authenticate(self, db: Session, username: str, password: str) -> Identity:
        """Return the Keystone user's identity with project names as groups.

        Raises SignInFailed for a wrong name or password (or a disabled user) and
        IdentityUnavailable when Keystone cannot be reached.
        """
        session = ksa_session.Session(timeout=self.timeout)
        auth = v3.Password(auth_url=self.auth_url, username=username, password=password,
                           user_domain_name=self.user_domain, unscoped=True)
        try:
            access = auth.get_access(session)
            token = str(access.auth_token)
            projects = self._projects(session, token)
            roles = {role for project in projects
                     for role in self._roles(session, token, project["id"])}
        except ksa_exc.Unauthorized:
            raise SignInFailed(WRONG_CREDENTIALS,
                               f"keystone sign-in refused for {username!r}") from None
        except ksa_exc.ClientException as error:
            raise IdentityUnavailable(UNAVAILABLE, f"keystone at {self.auth_url}: "
                                      f"{type(error).__name__}: {error}") from None
        return Identity(username=username, display_name=access.username or username,
                        groups=tuple(sorted(p["name"] for p in projects)),
                        is_admin=self.admin_role in roles)

    def _projects(self, session: ksa_session.Session, token: str) -> list[dict[str, Any]]:
        response = session.get(f"{self.auth_url.rstrip('/')}/auth/projects",
                               headers={"X-Auth-Token": token}, raise_exc=True)
        projects = [p for p in response.json()["projects"] if p.get("enabled", True)]
        return sorted(projects, key=lambda p: str(p["name"]))[: self.max_projects]

    def _roles(self, session: ksa_session.Session, token: str, project_id: str) -> list[str]:
        scoped = v3.Token(auth_url=self.auth_url, token=token, project_id=project_id)
        return list(scoped.get_access(session).role_names or [])
