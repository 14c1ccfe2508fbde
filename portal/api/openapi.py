"""The OpenAPI 3.1 document of /api/v1: each domain's path items, components from its models.

Every domain folder with API routes has an ``openapi`` module with ``PATHS`` (small path items
that point at models) and a ``schemas`` module with ``REQUESTS`` and ``REPLIES`` (the pydantic
models of its bodies). :func:`openapi_document` joins them; the components are the models' JSON
schemas (:func:`daaas.portal.api.schema.components`), so the document cannot drift from what
the views parse and write.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from pydantic import BaseModel

from daaas.catalogue.model import Environment
from daaas.portal.api import schemas
from daaas.portal.api.schema import ID_SCHEMA, Error, components, content, errors, request_body

NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
TOKEN_ID = {"name": "token_id", "in": "path", "required": True, "schema": ID_SCHEMA}
PATHS: dict[str, Any] = {
    "/openapi.json": {"get": {"summary": "This document", "security": [],
                              "responses": {"200": {"description": "OpenAPI 3.1 document"}}}},
    "/me": {"get": {"summary": "The signed-in user",
                    "responses": {"200": content(schemas.User, "OK"), **errors(401)}}},
    "/catalogue": {"get": {"summary": "Environments the user may launch", "responses": {
        "200": content(schemas.Catalogue, "OK"), **errors(401)}}},
    "/catalogue/{name}": {"parameters": [NAME], "get": {
        "summary": "One environment", "responses": {
            "200": content(Environment, "OK"), **errors(401, 404)}}},
    "/admin/catalogue": {"get": {
        "summary": "Validity of every catalogue entry (admins)",
        "responses": {"200": content(schemas.AdminCatalogue, "OK"), **errors(401, 403)}}},
    "/tokens": {
        "get": {"summary": "The user's API tokens (name, created, last used, expiry; never "
                           "the secret)",
                "responses": {"200": content(schemas.TokenList, "OK"), **errors(401)}},
        "post": {
            "summary": "Create a personal API token (the secret is shown once); a signed-in "
                       "browser session only, never a request authenticated by a token",
            "requestBody": request_body(schemas.TokenRequest, required=False),
            "responses": {"201": content(schemas.Token, "Created"), **errors(
                400, 401, 403, _400="Invalid body, a lifetime beyond the portal's maximum, "
                "or the user has as many tokens as allowed",
                _403="Authenticated by a token, or no CSRF token")}}},
    "/tokens/{token_id}": {
        "parameters": [TOKEN_ID],
        "delete": {"summary": "Revoke one of the user's API tokens (it answers 401 from now on)",
                   "responses": {"204": {"description": "Revoked"}, **errors(401, 403, 404)}}},
}


def _parts() -> tuple[tuple[dict[str, Any], ModuleType], ...]:
    """Return each domain's path items and its ``schemas`` module, this one's first."""
    from daaas.portal.access import openapi as access
    from daaas.portal.access import schemas as access_schemas
    from daaas.portal.admin import openapi as admin
    from daaas.portal.admin import schemas as admin_schemas
    from daaas.portal.audit import openapi as audit
    from daaas.portal.audit import schemas as audit_schemas
    from daaas.portal.bootstrap import openapi as context
    from daaas.portal.bootstrap import schemas as context_schemas
    from daaas.portal.experiments import openapi as experiments
    from daaas.portal.experiments import schemas as experiment_schemas
    from daaas.portal.hpc import openapi as hpc
    from daaas.portal.hpc import schemas as hpc_schemas
    from daaas.portal.machines import openapi as machines
    from daaas.portal.machines import schemas as machine_schemas
    from daaas.portal.pools import openapi as pools
    from daaas.portal.pools import schemas as pool_schemas
    from daaas.portal.quotas import openapi as quotas
    from daaas.portal.quotas import schemas as quota_schemas
    from daaas.portal.sharing import openapi as sharing
    from daaas.portal.sharing import schemas as sharing_schemas
    from daaas.portal.sshkeys import openapi as sshkeys
    from daaas.portal.sshkeys import schemas as sshkey_schemas

    return ((PATHS, schemas), (machines.PATHS, machine_schemas),
            (experiments.PATHS, experiment_schemas), (access.PATHS, access_schemas),
            (context.PATHS, context_schemas), (hpc.PATHS, hpc_schemas),
            (admin.PATHS, admin_schemas), (pools.PATHS, pool_schemas),
            (sshkeys.PATHS, sshkey_schemas), (audit.PATHS, audit_schemas),
            (quotas.PATHS, quota_schemas), (sharing.PATHS, sharing_schemas))


def api_models() -> tuple[tuple[type[BaseModel], ...], tuple[type[BaseModel], ...]]:
    """Return every request model and every reply model of /api/v1 (the error body included)."""
    parts = _parts()
    requests = tuple(model for _, models in parts for model in models.REQUESTS)
    replies = (Error, *(model for _, models in parts for model in models.REPLIES))
    return requests, replies


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document describing every /api/v1 route.

    Raises ValueError when two API models share a name (see :func:`components`).
    """
    paths = {path: item for items, _ in _parts() for path, item in items.items()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "daaas portal API", "version": "1",
                 "description": "Authenticate with the portal session cookie (plus the "
                                "X-CSRF-Token header for writes) or `Authorization: Bearer "
                                "<token>` with a personal token from the account page (or "
                                "`daaas tokens create`). A 400 names the field of the body "
                                "or the query parameter that does not fit its schema."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}, {"session": []}],
        "components": {"schemas": components(*api_models()), "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "daaas_session"}}},
        "paths": paths,
    }
