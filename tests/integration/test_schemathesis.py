"""schemathesis against the OpenAPI document the portal serves: no 5xx, and every answer has a
status, a content type and a body the document promises.

A real WSGI server (waitress, as ``daaas serve`` runs it) serves a portal on the in-memory
provider (no desktop is ever started, whatever the fuzzer launches) on a fresh demo database,
SQLite and PostgreSQL. schemathesis reads ``/api/v1/openapi.json`` from it and runs its
examples, coverage (boundary and out-of-schema values: huge integers, NUL characters, wrong
types) and fuzzing phases for every operation, signed in as a user both ways: a bearer token,
and a browser session's cookie with its ``X-CSRF-Token`` (token creation, which only a
session may do). The run is bounded and derandomized: the same cases every run.

Destructive operations are safe to fuzz: the fuzzer's own token is minted again whenever a
``DELETE /tokens/{id}`` it made happened to revoke it, machines it launches run nowhere (the
memory provider), and one it deletes or stops is its own. The one 5xx the portal answers by
design here is 503 ``hpc_not_configured`` (no cluster is configured), which the document
declares; any other is a failure.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
import waitress
from flask import Flask
from schemathesis import AuthContext, Case, CheckContext, Response
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import Status, StopReason, events
from schemathesis.schemas import BaseSchema
from sqlalchemy import select

from daaas.portal import create_app
from daaas.portal.api.openapi import openapi_document
from daaas.portal.auth.models import ApiToken
from daaas.portal.auth.service import create_token, get_user
from daaas.portal.db import unit_of_work
from tests.support.web import bearer

USER, PASSWORD = "scientist", "scientist-demo"
#: Small, fixed bounds: the whole run (both databases) takes well under a few minutes.
CONFIG = {
    "seed": 20261203,
    "generation": {"mode": "all", "max-examples": 12, "deterministic": True,
                   "database": "none", "no-shrink": True},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True},
               "fuzzing": {"enabled": True}, "stateful": {"enabled": False}},
    "request-timeout": 30,
}


class Portal:
    """A served portal: its base URL, a browser session's cookie and CSRF token, and a bearer
    token that is minted again whenever the fuzzer revokes it."""

    def __init__(self, app: Flask, base_url: str) -> None:
        self.app, self.base_url = app, base_url
        self._secret, self._token_id = "", 0
        browser = requests.Session()
        page = browser.get(f"{base_url}/sign-in", timeout=30).text
        csrf = page.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        signed_in = browser.post(f"{base_url}/sign-in", timeout=30, allow_redirects=False,
                                 data={"username": USER, "password": PASSWORD,
                                       "csrf_token": csrf})
        assert signed_in.status_code == 302, signed_in.text[:300]
        self.cookie = "; ".join(f"{c.name}={c.value}" for c in browser.cookies)
        self.csrf = browser.get(f"{base_url}/account", timeout=30).text.split(
            'name="csrf_token" value="', 1)[1].split('"', 1)[0]

    def bearer(self) -> str:
        """Return a live token of the user, making a new one when the last was revoked."""
        factory = self.app.extensions["daaas"].session_factory
        with unit_of_work(factory) as db:
            if not self._token_id or db.scalar(select(ApiToken.id).where(
                    ApiToken.id == self._token_id)) is None:
                token, self._secret = create_token(db, get_user(db, USER), "fuzz", 1)
                self._token_id = token.id
        return self._secret

    def headers(self, case: Case) -> dict[str, str]:
        """Return the credentials for ``case``: the session (cookie and CSRF header) always,
        and the bearer token except where only a session may act (creating tokens)."""
        headers = {"Cookie": self.cookie, "X-CSRF-Token": self.csrf}
        if (case.method.upper(), case.path) != ("POST", "/tokens"):
            headers["Authorization"] = f"Bearer {self.bearer()}"
        return headers


@pytest.fixture
def portal(settings_override: dict[str, Any]) -> Iterator[Portal]:
    """A portal on the memory provider served by waitress on a free port of 127.0.0.1."""
    app = create_app({**settings_override, "provider": "memory", "embedded_worker": False,
                      "start_websockify": False})
    assert app.extensions["daaas"].provider.name == "memory"  # never a real desktop
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4,
                                    ident="daaas-fuzz")
    thread = threading.Thread(target=server.run, name="fuzz-server", daemon=True)
    thread.start()
    try:
        yield Portal(app, f"http://127.0.0.1:{server.effective_port}")  # type: ignore[union-attr]
    finally:
        server.close()
        thread.join(10)
        app.extensions["daaas"].engine.dispose()


@schemathesis.check
def no_server_error(ctx: CheckContext, response: Response, case: Case) -> bool | None:
    """schemathesis's not_a_server_error, except 503 ``hpc_not_configured`` (documented: this
    portal has no cluster)."""
    if response.status_code == 503 and _error_code(response) == "hpc_not_configured":
        return True
    return not_a_server_error(ctx, response, case)


def _error_code(response: Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return error.get("code") if isinstance(error, dict) else None


CHECKS = ("no_server_error", "response_schema_conformance", "status_code_conformance",
          "content_type_conformance", "negative_data_rejection")


def _schema(portal: Portal) -> BaseSchema:
    """The OpenAPI document as the portal serves it, loaded by schemathesis with the run's
    bounds, checks and credentials."""
    config = SchemathesisConfig.from_dict({
        **CONFIG, "headers": {"Cookie": portal.cookie, "X-CSRF-Token": portal.csrf},
        "checks": {"enabled": False, **{name: {"enabled": True} for name in CHECKS}}})
    schema = schemathesis.openapi.from_url(f"{portal.base_url}/api/v1/openapi.json",
                                           config=config)

    class Bearer:
        """The user's live API token on every request but ``POST /tokens`` (a session's)."""

        def get(self, case: Case, ctx: AuthContext) -> str:
            return portal.bearer()

        def set(self, case: Case, data: str, ctx: AuthContext) -> None:
            if (case.method.upper(), case.path) == ("POST", "/tokens"):
                return
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    schema.auth(refresh_interval=None)(Bearer)
    return schema


def _report(event: events.ScenarioFinished) -> list[str]:
    lines = []
    for case_id, checks in event.recorder.checks.items():
        for check in checks:
            if check.status == Status.SUCCESS or check.failure_info is None:
                continue
            case = event.recorder.cases[case_id].value
            failure = check.failure_info.failure
            lines.append(f"{event.recorder.label} [{check.name}] {failure.title}: "
                         f"{(failure.message or '')[:300]}\n    {case.as_curl_command()}")
    return lines


def test_the_api_answers_as_its_document_says(portal: Portal) -> None:
    schema = _schema(portal)
    problems: list[str] = []
    operations: set[str] = set()
    for event in schemathesis.engine.from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            operations.add(event.recorder.label)
            problems.extend(_report(event))
        elif isinstance(event, events.NonFatalError | events.FatalError):
            problems.append(f"schemathesis error: {event!r}"[:600])
        elif isinstance(event, events.EngineFinished):
            assert event.stop_reason == StopReason.COMPLETED, event.stop_reason
    assert not problems, "\n".join(sorted(set(problems)))
    documented = {f"{method.upper()} {path}" for path, item in
                  requests.get(f"{portal.base_url}/api/v1/openapi.json", timeout=30)
                  .json()["paths"].items() for method in item if method != "parameters"}
    # Every operation was fuzzed (the document itself takes no input to vary).
    assert documented - {"GET /openapi.json"} <= operations, documented - operations


# --- every input is bounded -----------------------------------------------------------------

def _unbounded(node: Any, where: str, components: dict[str, Any], seen: set[str]) -> list[str]:
    """Return where in ``node`` (a JSON schema) a number has no minimum and maximum, a text
    no maxLength, a list no maxItems or a mapping no maxProperties."""
    if isinstance(node, list):
        return [p for i, item in enumerate(node) for p in _unbounded(item, where, components, seen)]
    if not isinstance(node, dict):
        return []
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return []
        return _unbounded(components[name], name, components, seen | {name})
    found: list[str] = []
    kinds = node.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    if {"integer", "number"} & set(kinds) and not (
            {"minimum", "exclusiveMinimum"} & set(node) and {"maximum", "exclusiveMaximum"}
            & set(node)):
        found.append(f"{where}: a number without minimum and maximum")
    if "string" in kinds and "maxLength" not in node and "enum" not in node \
            and "const" not in node:
        found.append(f"{where}: a text without maxLength")
    if "array" in kinds and "maxItems" not in node:
        found.append(f"{where}: a list without maxItems")
    if "object" in kinds and node.get("additionalProperties") not in (None, False) \
            and "maxProperties" not in node:
        found.append(f"{where}: a mapping without maxProperties")
    for key, value in node.items():
        if key == "properties":
            found += [p for name, field in value.items()
                      for p in _unbounded(field, f"{where}.{name}", components, seen)]
        elif key in {"items", "additionalProperties", "anyOf", "oneOf", "allOf"}:
            found += _unbounded(value, where, components, seen)
    return found


def test_every_parameter_and_request_field_is_bounded() -> None:
    """The fuzzer (and an attacker) can send any number or text: each one the API takes is
    bounded in its model, so an overflowing id or a megabyte name is a 400, never a 500."""
    doc = openapi_document()
    components = doc["components"]["schemas"]
    found: list[str] = []
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method == "parameters":
                continue
            for parameter in [*item.get("parameters", []), *operation.get("parameters", [])]:
                if parameter["in"] == "path" and parameter["schema"].get("type") == "string":
                    continue  # a name in the path: matched against stored names, never stored
                found += _unbounded(parameter["schema"], f"{method.upper()} {path} "
                                    f"{parameter['name']}", components, set())
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body:
                found += _unbounded(body["schema"], f"{method.upper()} {path}", components, set())
    assert not found, "\n".join(found)


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/machines?offset=11371729328651038823324581888", 400),
    ("GET", "/machines?limit=11371729328651038823324581888", 400),
    ("GET", "/machines?offset=%C2%B2", 400),
    ("GET", "/machines?all=maybe", 400),
    ("GET", "/jobs?experiment=11371729328651038823324581888", 400),
    ("GET", "/jobs?experiment=%C2%B2", 400),
    ("GET", "/experiments/11371729328651038823324581888", 404),
    ("GET", "/experiments/2147483648", 404),
    ("DELETE", "/tokens/11371729328651038823324581888", 404),
    ("DELETE", "/tokens/2147483648", 404),
    ("GET", "/machines/a%00b", 400),
    ("GET", "/catalogue/a%00b", 400),
])
def test_out_of_range_numbers_and_nul_are_refused_not_500(
        app: Flask, client: Any, method: str, path: str, status: int) -> None:
    response = client.open(f"/api/v1{path}", method=method, headers=bearer(app, USER))
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.get_json()["error"]["message"]
