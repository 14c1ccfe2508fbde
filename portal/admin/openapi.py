"""OpenAPI path items of the admin console's API; the bodies are the models in :mod:`.schemas`."""

from __future__ import annotations

from typing import Any

from daaas.portal.admin import schemas
from daaas.portal.api.schema import content, errors, query_parameters, request_body

USERNAME = {"name": "username", "in": "path", "required": True,
            "schema": {"type": "string", "maxLength": 64}}

PATHS: dict[str, Any] = {
    "/admin/users": {"get": {
        "summary": "Search users, with what each holds now (admins)",
        "parameters": query_parameters(schemas.UserQuery),
        "responses": {"200": content(schemas.UserList, "OK"), **errors(400, 401, 403)}}},
    "/admin/users/{username}": {"parameters": [USERNAME], "get": {
        "summary": "One user with their machines (admins)",
        "responses": {"200": content(schemas.UserDetail, "OK"), **errors(401, 403, 404)}}},
    "/admin/users/{username}/disable": {"parameters": [USERNAME], "post": {
        "summary": "Disable an account with a reason: its sessions end, sign-in, API tokens "
                   "and desktop tokens are refused; optionally stop its ready machines",
        "requestBody": request_body(schemas.DisableRequest),
        "responses": {"200": content(schemas.AdminUser, "Disabled"),
                      **errors(400, 401, 403, 404, 409)}}},
    "/admin/users/{username}/enable": {"parameters": [USERNAME], "post": {
        "summary": "Enable an account again (admins)",
        "responses": {"200": content(schemas.AdminUser, "Enabled"),
                      **errors(401, 403, 404)}}},
    "/admin/machines": {"get": {
        "summary": "Everyone's machines, filtered by state, user, environment, flavour, age "
                   "and idle time (admins)",
        "parameters": query_parameters(schemas.MachineQuery),
        "responses": {"200": content(schemas.AdminMachineList, "OK"),
                      **errors(400, 401, 403)}}},
    "/admin/machines/bulk": {"post": {
        "summary": "Stop or delete several machines with a reason their owners see (answers "
                   "at once; the reconciler does the work)",
        "requestBody": request_body(schemas.BulkRequest),
        "responses": {"200": content(schemas.BulkResult, "Asked"),
                      **errors(400, 401, 403)}}},
    "/admin/capacity": {"get": {
        "summary": "Capacity per flavour and GPU model: used, free now, next-free estimate",
        "responses": {"200": content(schemas.CapacityReport, "OK"), **errors(401, 403)}}},
    "/admin/usage": {"get": {
        "summary": "Machine-hours and GPU-hours per environment, group or user over a period",
        "parameters": query_parameters(schemas.UsageQuery),
        "responses": {"200": content(schemas.UsageReport, "OK"), **errors(400, 401, 403)}}},
}
