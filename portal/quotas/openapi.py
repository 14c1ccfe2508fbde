"""OpenAPI path items of the quota routes; the bodies are the models in :mod:`.schemas`."""

from __future__ import annotations

from typing import Any

from daaas.portal.api.schema import content, errors, request_body
from daaas.portal.quotas.schemas import MyQuota, Quota, QuotaLimits, QuotaList

TARGET = [{"name": "scope", "in": "path", "required": True,
           "schema": {"type": "string", "enum": ["user", "group"]}},
          {"name": "name", "in": "path", "required": True,
           "schema": {"type": "string", "maxLength": 100}}]

PATHS: dict[str, Any] = {
    "/quota": {"get": {
        "summary": "The signed-in user's limits (machines, vCPUs, memory, GPUs by model), what "
                   "is in use and whose limit each is; their storage quota",
        "responses": {"200": content(MyQuota, "OK"), **errors(401)}}},
    "/admin/quotas": {"get": {
        "summary": "Every user's and group's quota, from the settings or set by an "
                   "administrator (admins)",
        "responses": {"200": content(QuotaList, "OK"), **errors(401, 403)}}},
    "/admin/quotas/{scope}/{name}": {
        "parameters": TARGET,
        "put": {"summary": "Set a user's or group's quota, replacing the settings' entry "
                           "(admins; audited)",
                "requestBody": request_body(QuotaLimits),
                "responses": {"200": content(Quota, "Set"), **errors(400, 401, 403, 404)}},
        "delete": {"summary": "Drop an administrator's quota: the settings' entry applies "
                              "again (admins; audited)",
                   "responses": {"204": {"description": "Dropped"},
                                 **errors(401, 403, 404)}}},
}
