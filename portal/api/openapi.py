"""The OpenAPI 3.1 document of /api/v1, built from small schema pieces."""

from __future__ import annotations

from typing import Any

STRINGS = {"type": "array", "items": {"type": "string"}}
ERROR = {
    "type": "object", "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}}}},
}
USER = {
    "type": "object",
    "required": ["username", "display_name", "email", "uid", "gid", "is_admin", "groups",
                 "instruments"],
    "additionalProperties": False,
    "properties": {"username": {"type": "string"}, "display_name": {"type": "string"},
                   "email": {"type": "string"}, "uid": {"type": "integer"},
                   "gid": {"type": "integer"}, "is_admin": {"type": "boolean"},
                   "groups": STRINGS, "instruments": STRINGS},
}
APPLICATION = {
    "type": "object", "required": ["name", "command", "icon", "category"],
    "properties": {"name": {"type": "string"}, "command": {"type": "string", "pattern": "^/cvmfs/"},
                   "icon": {"type": "string"}, "category": {"type": "string"}},
}
ENVIRONMENT = {
    "type": "object",
    "required": ["name", "title", "description", "icon", "image", "flavors", "gpu",
                 "applications", "cvmfs_repositories", "protocols", "access", "limits"],
    "properties": {
        "name": {"type": "string"}, "title": {"type": "string"},
        "description": {"type": "string"}, "icon": {"type": "string"},
        "image": {"type": "object"}, "flavors": {"type": "object"},
        "gpu": {"enum": ["none", "optional", "required"]},
        "applications": {"type": "array", "items": {"$ref": "#/components/schemas/Application"}},
        "cvmfs_repositories": STRINGS, "protocols": STRINGS,
        "access": {"type": "object"}, "limits": {"type": "object"},
    },
}
PROBLEM = {"type": "object", "required": ["path", "field", "message", "text"], "properties": {
    "path": {"type": "string"}, "field": {"type": ["string", "null"]},
    "message": {"type": "string"}, "text": {"type": "string"}}}
ADMIN_CATALOGUE = {
    "type": "object", "required": ["directory", "valid", "invalid"],
    "properties": {"directory": {"type": "string"}, "valid": STRINGS, "invalid": {
        "type": "array", "items": {"type": "object", "required": ["entry", "problems"],
                                   "properties": {"entry": {"type": "string"}, "problems": {
                                       "type": "array",
                                       "items": {"$ref": "#/components/schemas/Problem"}}}}}},
}
TOKEN = {"type": "object", "required": ["name", "token", "expires_at"], "properties": {
    "name": {"type": "string"}, "token": {"type": "string"},
    "expires_at": {"type": "string", "format": "date-time"}}}
SCHEMAS = {"Error": ERROR, "User": USER, "Application": APPLICATION, "Environment": ENVIRONMENT,
           "Problem": PROBLEM, "AdminCatalogue": ADMIN_CATALOGUE, "Token": TOKEN,
           "Catalogue": {"type": "object", "required": ["environments"], "properties": {
               "environments": {"type": "array",
                                "items": {"$ref": "#/components/schemas/Environment"}}}}}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(schema)}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {400: "Invalid input", 401: "Not signed in", 403: "Not allowed", 404: "Not found",
            409: "Conflicts with the current state"}
    return {str(code): _json("Error", text[code]) for code in codes}


def _get(summary: str, schema: str, *errors: int, public: bool = False) -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary,
                                 "responses": {"200": _json(schema, "OK"), **_errors(*errors)}}
    if public:
        operation["security"] = []
    return {"get": operation}


PATHS: dict[str, Any] = {
    "/openapi.json": {"get": {"summary": "This document", "security": [],
                              "responses": {"200": {"description": "OpenAPI 3.1 document"}}}},
    "/me": _get("The signed-in user", "User", 401),
    "/catalogue": _get("Environments the user may launch", "Catalogue", 401),
    "/catalogue/{name}": {"get": {**_get("One environment", "Environment", 401, 404)["get"],
                                  "parameters": [{"name": "name", "in": "path", "required": True,
                                                  "schema": {"type": "string"}}]}},
    "/admin/catalogue": _get("Validity of every catalogue entry (admins)", "AdminCatalogue",
                             401, 403),
    "/tokens": {"post": {
        "summary": "Create a personal API token (the secret is shown once)",
        "requestBody": {"required": False, "content": {"application/json": {"schema": {
            "type": "object", "properties": {"name": {"type": "string"}}}}}},
        "responses": {"201": _json("Token", "Created"), **_errors(400, 401, 403)}}},
}


def openapi_document() -> dict[str, Any]:
    """Return the OpenAPI 3.1 document describing every /api/v1 route."""
    from daaas.portal.access import openapi as access
    from daaas.portal.bootstrap import openapi as context
    from daaas.portal.experiments import openapi as experiments
    from daaas.portal.hpc import openapi as hpc
    from daaas.portal.machines import openapi as machines

    parts = (machines, experiments, access, context, hpc)
    schemas = {**SCHEMAS, **{k: v for part in parts for k, v in part.SCHEMAS.items()}}
    paths = {**PATHS, **{k: v for part in parts for k, v in part.PATHS.items()}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "daaas portal API", "version": "1",
                 "description": "Authenticate with the portal session cookie (plus the "
                                "X-CSRF-Token header for writes) or `Authorization: Bearer "
                                "<token>` from `daaas tokens create`."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}, {"session": []}],
        "components": {"schemas": schemas, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"},
            "session": {"type": "apiKey", "in": "cookie", "name": "daaas_session"}}},
        "paths": paths,
    }
