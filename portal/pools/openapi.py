"""OpenAPI path items of the warm pools' admin API; the bodies are the models in :mod:`.schemas`."""

from __future__ import annotations

from typing import Any

from daaas.portal.api.schema import content, errors, request_body
from daaas.portal.pools import schemas

_NAME = {"type": "string", "maxLength": 100}
POOL = [{"name": "environment", "in": "path", "required": True, "schema": _NAME},
        {"name": "flavor", "in": "path", "required": True, "schema": _NAME}]

PATHS: dict[str, Any] = {
    "/admin/pools": {"get": {
        "summary": "The warm pools: base size, schedule, the size in force now and the "
                   "worker's figures (admins)",
        "responses": {"200": content(schemas.PoolList, "OK"), **errors(401, 403)}}},
    "/admin/pools/{environment}/{flavor}": {
        "parameters": POOL,
        "put": {"summary": "Set a pool's base size (and schedule, if given); the worker "
                           "applies it in its next cycle; audited (admins)",
                "requestBody": request_body(schemas.PoolResize),
                "responses": {"200": content(schemas.Pool, "Changed"),
                              **errors(400, 401, 403, 404)}},
        "patch": {"summary": "Change what is given of a pool's base size and schedule; "
                             "audited (admins)",
                  "requestBody": request_body(schemas.PoolChange),
                  "responses": {"200": content(schemas.Pool, "Changed"),
                                **errors(400, 401, 403, 404)}}},
}
