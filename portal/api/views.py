"""JSON API under /api/v1, authenticated by the session cookie or a personal API token.

Every route here is described in :mod:`daaas.portal.api.openapi`; a test keeps the two in step.
Bodies are the models of :mod:`daaas.portal.api.schemas`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint

from daaas.catalogue.problems import CatalogueProblem
from daaas.portal.analysis.service import get_environment, visible_environments
from daaas.portal.api import schemas
from daaas.portal.api.openapi import openapi_document
from daaas.portal.api.schema import dump, parse_body
from daaas.portal.auth import service as auth_service
from daaas.portal.auth.current import require_admin, require_user
from daaas.portal.auth.models import User
from daaas.portal.lifecycle import db
from daaas.portal.runtime import runtime

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")


@blueprint.get("/openapi.json")
def openapi() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of this API."""
    return openapi_document()


@blueprint.get("/me")
def me() -> dict[str, Any]:
    """Return the signed-in user (:class:`~daaas.portal.api.schemas.User`)."""
    return dump(user_reply(require_user()))


@blueprint.get("/catalogue")
def catalogue() -> dict[str, Any]:
    """Return the environments the user may launch."""
    envs = visible_environments(runtime().catalogue, require_user())
    return dump(schemas.Catalogue(environments=list(envs)))


@blueprint.get("/catalogue/<name>")
def environment(name: str) -> dict[str, Any]:
    """Return one environment the user may launch."""
    return get_environment(runtime().catalogue, require_user(), name).to_dict()


@blueprint.get("/admin/catalogue")
def admin_catalogue() -> dict[str, Any]:
    """Return every catalogue entry's validity, with the problems of invalid ones."""
    require_admin()
    cat = runtime().catalogue
    return dump(schemas.AdminCatalogue(
        directory=str(cat.directory), valid=sorted(cat.environments),
        invalid=[schemas.InvalidEntry(entry=entry, problems=[problem_reply(p) for p in found])
                 for entry, found in sorted(cat.invalid.items())]))


@blueprint.post("/tokens")
def create_token() -> tuple[dict[str, Any], int]:
    """Create a personal API token for the signed-in user; the secret is returned once.

    Raises InvalidInput (a body that is not a :class:`~daaas.portal.api.schemas.TokenRequest`).
    """
    user = require_user()
    name = parse_body(schemas.TokenRequest, empty_means={}).name
    token, secret = auth_service.create_token(db(), user, name,
                                              runtime().settings.api_token_lifetime_days)
    return dump(schemas.Token(name=token.name, token=secret,
                              expires_at=token.expires_at.isoformat())), 201


def user_reply(user: User) -> schemas.User:
    """Return the public fields of ``user``."""
    return schemas.User(username=user.username, display_name=user.display_name,
                        email=user.email, uid=user.uid, gid=user.gid, is_admin=user.is_admin,
                        groups=list(user.groups), instruments=list(user.instruments))


def problem_reply(problem: CatalogueProblem) -> schemas.Problem:
    """Return a catalogue problem as the API shows it."""
    return schemas.Problem(path=str(problem.path), field=problem.field,
                           message=problem.message, text=str(problem))
