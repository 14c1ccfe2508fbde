"""Keystone sign-in: the user's Keystone name and password, their projects, roles and groups.

A password authentication gives the user an unscoped token. python-keystoneclient then reads,
on the *user's* session, the projects that token may scope to (``GET /v3/auth/projects``: any
valid token may ask, and it lists only enabled projects). The user's roles in them come from
one of two places:

* with ``keystone_cloud`` (a clouds.yaml entry for the portal's own Keystone account, holding
  ``reader`` on the system or ``admin``), keystoneclient lists the user's effective role
  assignments on the *portal's* session (``GET /v3/role_assignments?user.id=…&effective``) in
  one call. Keystone's default policy lets only admins and system or domain readers list role
  assignments, so this cannot be done with the user's own token;
* without it, a project-scoped token per project (at most ``max_projects``) tells the user's
  roles there — no portal credential needed, one request per project.

``keystone_group_map`` turns projects and roles into portal groups (:func:`map_groups`); empty,
the project names are the groups. Holding ``admin_role`` in any project makes the user a portal
administrator. Both are re-read at every sign-in, so a change in Keystone takes effect at the
user's next sign-in.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from typing import Any

from keystoneauth1 import exceptions as ksa_exc
from keystoneauth1 import session as ksa_session
from keystoneauth1.access import AccessInfo
from keystoneauth1.identity import v3
from keystoneclient.v3 import client as ks_client
from sqlalchemy.orm import Session

from daaas.portal.auth.backends import WRONG_CREDENTIALS, Identity, IdentityBackend
from daaas.portal.config import ConfigError, Settings, parse_group_map
from daaas.portal.errors import PortalError, SignInFailed

#: A user's projects (by name) and the roles they hold in each.
Assignments = dict[str, frozenset[str]]


class IdentityUnavailable(PortalError):
    """The identity service cannot be reached or is misconfigured."""

    status_code = 503
    code = "identity_unavailable"


UNAVAILABLE = ("Sign-in is unavailable right now because the identity service cannot be "
               "reached. Try again in a few minutes.")


def map_groups(assignments: Mapping[str, Iterable[str]],
               group_map: Mapping[str, str]) -> tuple[str, ...]:
    """Return the sorted portal groups of a user with these project → roles assignments.

    ``group_map`` is the ``keystone_group_map`` setting as parsed by
    :func:`daaas.portal.config.parse_group_map`: each key is ``"project"`` or
    ``"project:role"``, both shell-style patterns (``mx-*:member``); its value is a group name
    that may use ``{project}`` and ``{role}``. An empty map gives the project names themselves.
    Raises nothing (the map was checked when the settings were loaded).
    """
    if not group_map:
        return tuple(sorted(assignments))
    groups: set[str] = set()
    for project, roles in assignments.items():
        for pattern, group in group_map.items():
            want_project, has_role, want_role = pattern.partition(":")
            if not fnmatchcase(project, want_project):
                continue
            matched = [r for r in roles if fnmatchcase(r, want_role)] if has_role else [""]
            groups.update(group.format(project=project, role=role) for role in matched)
    return tuple(sorted(groups))


class KeystoneIdentityBackend(IdentityBackend):
    """Users and passwords checked by Keystone (v3) at ``auth_url``.

    ``portal_session`` is a keystoneauth session of the portal's own Keystone account; with it,
    role assignments are read in one call, without it from a scoped token per project.
    """

    name = "keystone"

    def __init__(self, auth_url: str, user_domain: str = "Default",
                 admin_role: str = "daaas-admin", timeout: float = 10.0,
                 max_projects: int = 20, group_map: Mapping[str, str] | None = None,
                 portal_session: ksa_session.Session | None = None) -> None:
        if not auth_url:
            raise ConfigError("Configuration key 'keystone_url' must be set when "
                              "identity_backend is 'keystone'.")
        self.auth_url, self.user_domain, self.admin_role = auth_url, user_domain, admin_role
        self.timeout, self.max_projects = timeout, max_projects
        self.group_map = dict(group_map or {})
        self.portal_session = portal_session

    @classmethod
    def from_settings(cls, settings: Settings) -> KeystoneIdentityBackend:
        """Return a backend for ``keystone_url`` with the configured group map and, when
        ``keystone_cloud`` is set, the portal's session from clouds.yaml.

        Raises ConfigError when ``keystone_url`` is empty or ``keystone_cloud`` is not in
        clouds.yaml.
        """
        portal_session = portal_session_for(settings.keystone_cloud) \
            if settings.keystone_cloud else None
        return cls(settings.keystone_url, settings.keystone_user_domain,
                   settings.keystone_admin_role,
                   group_map=parse_group_map(settings.keystone_group_map),
                   portal_session=portal_session)

    def authenticate(self, db: Session, username: str, password: str) -> Identity:
        """Return the Keystone user's identity, groups mapped from their projects and roles.

        Raises SignInFailed for a wrong name or password (or a disabled user) and
        IdentityUnavailable when Keystone cannot be reached or refuses the portal's account.
        """
        auth = v3.Password(auth_url=self.auth_url, username=username, password=password,
                           user_domain_name=self.user_domain, unscoped=True)
        session = ksa_session.Session(auth=auth, timeout=self.timeout)
        try:
            access = auth.get_access(session)
        except ksa_exc.Unauthorized:
            raise SignInFailed(WRONG_CREDENTIALS,
                               f"keystone sign-in refused for {username!r}") from None
        except ksa_exc.ClientException as error:
            raise self._unavailable(error) from None
        try:
            assignments = self.assignments(session, access)
        except ksa_exc.ClientException as error:
            raise self._unavailable(error) from None
        return Identity(username=username, display_name=access.username or username,
                        groups=map_groups(assignments, self.group_map),
                        is_admin=any(self.admin_role in roles for roles in assignments.values()))

    def assignments(self, session: ksa_session.Session, access: AccessInfo) -> Assignments:
        """Return the signed-in user's enabled projects, by name, with their roles in each.

        ``session`` is the user's (unscoped) session. Raises keystoneauth ClientException.
        """
        projects = {p.id: p.name for p in ks_client.Client(session=session).auth.projects()
                    if getattr(p, "enabled", True)}
        if self.portal_session is not None:
            roles = self._assigned_roles(str(access.user_id), projects)
        else:
            by_name = sorted(projects, key=projects.__getitem__)
            roles = self._token_roles(session, access, by_name[: self.max_projects])
        return {name: frozenset(roles.get(project_id, ())) for project_id, name in
                projects.items()}

    def _assigned_roles(self, user_id: str, projects: Mapping[str, str]) -> dict[str, set[str]]:
        reader = ks_client.Client(session=self.portal_session, interface="public")
        roles: dict[str, set[str]] = {}
        for assignment in reader.role_assignments.list(user=user_id, effective=True,
                                                       include_names=True):
            project = getattr(assignment, "scope", {}).get("project", {}).get("id")
            if project in projects:
                roles.setdefault(project, set()).add(assignment.role["name"])
        return roles

    def _token_roles(self, session: ksa_session.Session, access: AccessInfo,
                     project_ids: list[str]) -> dict[str, set[str]]:
        token = str(access.auth_token)
        return {project_id: set(v3.Token(auth_url=self.auth_url, token=token,
                                         project_id=project_id).get_access(session).role_names
                                or ()) for project_id in project_ids}

    def _unavailable(self, error: Exception) -> IdentityUnavailable:
        return IdentityUnavailable(UNAVAILABLE, f"keystone at {self.auth_url}: "
                                   f"{type(error).__name__}: {error}")


def portal_session_for(cloud: str) -> ksa_session.Session:
    """Return a keystoneauth session of the clouds.yaml entry ``cloud`` (the portal's account).

    Raises ConfigError when clouds.yaml has no such entry or it is unusable.
    """
    import openstack.config  # only when a portal account is configured
    from openstack import exceptions as sdk_exc

    try:
        region: Any = openstack.config.get_cloud_region(cloud=cloud)
        session: ksa_session.Session = region.get_session()
    except (sdk_exc.SDKException, ksa_exc.ClientException) as error:
        raise ConfigError(f"Configuration key 'keystone_cloud': cannot use the clouds.yaml "
                          f"entry {cloud!r}: {error}") from None
    return session
