"""JSON API under /api/v1, authenticated by the session cookie or a personal API token.

Every route here is described in :mod:`daaas.portal.api.openapi`; a test keeps the two in step.
Bodies are the models of :mod:`daaas.portal.api.schemas`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g

from daaas.catalogue.problems import CatalogueProblem
from daaas.portal.analysis.service import get_environment, visible_environments
from daaas.portal.api import schemas
from daaas.portal.api.openapi import openapi_document
from daaas.portal.api.schema import ID, dump, parse_body, with_ids
from daaas.portal.auth import tokens
from daaas.portal.auth.current import require_admin, require_user
from daaas.portal.auth.models import ApiToken, User
from daaas.portal.errors import Forbidden
from daaas.portal.lifecycle import db
from daaas.portal.runtime import runtime

blueprint = with_ids(Blueprint("api", __name__, url_prefix="/api/v1"))


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

    Only a signed-in browser session may: raises Forbidden for a request authenticated by a
    token (a stolen token cannot mint lasting ones), InvalidInput for a body that is not a
    :class:`~daaas.portal.api.schemas.TokenRequest`, a name or lifetime the portal refuses, or
    a user at the cap (:func:`daaas.portal.auth.tokens.new_token`).
    """
    user = require_user()
    if g.get("token_auth"):
        raise Forbidden("API tokens cannot create API tokens: create one while signed in to "
                        "the portal (your account page), or ask an administrator to run "
                        "`daaas tokens create`.")
    body = parse_body(schemas.TokenRequest, empty_means={})
    made = tokens.new_token(db(), runtime().settings, user, body.name, body.lifetime_days)
    row = made.token
    return dump(schemas.Token(id=row.id, name=row.name, token=made.secret, prefix=row.prefix,
                              created_at=row.created_at.isoformat(),
                              expires_at=row.expires_at.isoformat())), 201


@blueprint.get("/tokens")
def list_tokens() -> dict[str, Any]:
    """Return the signed-in user's API tokens (:class:`~daaas.portal.api.schemas.TokenList`),
    never their secrets."""
    user = require_user()
    return dump(schemas.TokenList(tokens=[token_reply(t) for t in tokens.tokens_of(db(), user)]))


@blueprint.delete(f"/tokens/<{ID}:token_id>")
def revoke_token(token_id: int) -> tuple[str, int]:
    """Revoke one of the signed-in user's API tokens (it answers 401 from now on); 204.

    Raises NotFound alike for a token that does not exist and one of someone else.
    """
    tokens.revoke_token(db(), token_id, require_user())
    return "", 204


def token_reply(token: ApiToken) -> schemas.TokenInfo:
    """Return a token as listings show it (without its secret)."""
    used = token.last_used_at
    return schemas.TokenInfo(id=token.id, name=token.name, prefix=token.prefix,
                             created_at=token.created_at.isoformat(),
                             last_used_at=used.isoformat() if used else None,
                             expires_at=token.expires_at.isoformat(),
                             expired=tokens.is_expired(token))


def user_reply(user: User) -> schemas.User:
    """Return the public fields of ``user``."""
    return schemas.User(username=user.username, display_name=user.display_name,
                        email=user.email, uid=user.uid, gid=user.gid, is_admin=user.is_admin,
                        groups=list(user.groups), instruments=list(user.instruments))


def problem_reply(problem: CatalogueProblem) -> schemas.Problem:
    """Return a catalogue problem as the API shows it."""
    return schemas.Problem(path=str(problem.path), field=problem.field,
                           message=problem.message, text=str(problem))
