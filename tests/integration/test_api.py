"""The JSON API: authentication by session or token, errors as JSON, and the OpenAPI document
matching what the API really does."""

from __future__ import annotations

import importlib
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from openapi_spec_validator import validate

from daaas.portal.api.openapi import api_models, openapi_document
from daaas.portal.api.schema import REF
from tests.support.web import api_token, assert_matches, csrf_from, sign_in


def test_openapi_document_is_valid_and_covers_every_route(app: Flask, client: FlaskClient) -> None:
    doc = client.get("/api/v1/openapi.json").get_json()
    validate(doc)
    documented = {(path, method.upper()) for path, ops in doc["paths"].items()
                  for method in ops if method != "parameters"}
    routed = {(re.sub(r"<(?:[^:<>]+:)?(\w+)>", r"{\1}", rule.rule.removeprefix("/api/v1")), method)
              for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1")
              for method in rule.methods or () if method not in {"HEAD", "OPTIONS"}}
    assert documented == routed


def test_no_credentials_gives_json_401(client: FlaskClient) -> None:
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert_matches(response.get_json(), "Error")
    assert "Sign in" in response.get_json()["error"]["message"]


def test_unknown_api_path_is_json_404(client: FlaskClient) -> None:
    response = client.get("/api/v1/nothing-here")
    assert response.status_code == 404 and "error" in response.get_json()


def test_me_by_session(client: FlaskClient) -> None:
    sign_in(client, "scientist", "scientist-demo")
    body = client.get("/api/v1/me").get_json()
    assert_matches(body, "User")
    assert body["username"] == "scientist" and body["uid"] == 20000 and not body["is_admin"]


def test_me_by_token_and_bad_token(app: Flask, client: FlaskClient) -> None:
    token = api_token(app, "neutron")
    body = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).get_json()
    assert body["username"] == "neutron"
    bad = client.get("/api/v1/me", headers={"Authorization": "Bearer daaas_forged"})
    assert bad.status_code == 401 and "daaas tokens create" in bad.get_json()["error"]["message"]


def test_catalogue_is_filtered_per_user(app: Flask, client: FlaskClient) -> None:
    def names(username: str) -> set[str]:
        headers = {"Authorization": f"Bearer {api_token(app, username)}"}
        body = client.get("/api/v1/catalogue", headers=headers).get_json()
        assert_matches(body, "Catalogue")
        return {env["name"] for env in body["environments"]}

    everything = set(app.extensions["daaas"].catalogue.environments)
    assert names("admin") == everything
    assert names("scientist") and names("scientist") < everything
    assert names("neutron") and names("neutron") != names("scientist")


def test_one_environment_and_hidden_ones(app: Flask, client: FlaskClient) -> None:
    headers = {"Authorization": f"Bearer {api_token(app, 'neutron')}"}
    visible = client.get("/api/v1/catalogue", headers=headers).get_json()["environments"][0]
    one = client.get(f"/api/v1/catalogue/{visible['name']}", headers=headers)
    assert one.status_code == 200
    assert_matches(one.get_json(), "Environment")
    hidden = set(app.extensions["daaas"].catalogue.environments) - {
        e["name"] for e in client.get("/api/v1/catalogue", headers=headers)
        .get_json()["environments"]}
    for name in [*hidden, "no-such-environment"]:
        response = client.get(f"/api/v1/catalogue/{name}", headers=headers)
        assert response.status_code == 404, name
        assert_matches(response.get_json(), "Error")


def test_admin_catalogue_needs_admin(app: Flask, client: FlaskClient) -> None:
    user = client.get("/api/v1/admin/catalogue",
                      headers={"Authorization": f"Bearer {api_token(app, 'scientist')}"})
    assert user.status_code == 403
    admin = client.get("/api/v1/admin/catalogue",
                       headers={"Authorization": f"Bearer {api_token(app, 'admin')}"})
    assert_matches(admin.get_json(), "AdminCatalogue")
    assert admin.get_json()["invalid"] == []


@pytest.mark.parametrize("with_csrf", [False, True])
def test_create_token_by_session_needs_csrf(client: FlaskClient, with_csrf: bool) -> None:
    sign_in(client, "scientist", "scientist-demo")
    headers = {"X-CSRF-Token": csrf_from(client, "/analysis")} if with_csrf else {}
    response = client.post("/api/v1/tokens", json={"name": "laptop"}, headers=headers)
    if not with_csrf:
        assert response.status_code == 403
        return
    assert response.status_code == 201
    body = response.get_json()
    assert_matches(body, "Token")
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.get_json()["username"] == "scientist"


def _session_headers(client: FlaskClient) -> dict[str, str]:
    """Sign ``client`` in and return the CSRF header its scripts send: tokens are created by a
    signed-in browser only (a bearer token gets 403, see test_api_tokens.py)."""
    sign_in(client, "scientist", "scientist-demo")
    return {"X-CSRF-Token": csrf_from(client, "/analysis")}


def test_create_token_rejects_bad_name(client: FlaskClient) -> None:
    headers = _session_headers(client)
    response = client.post("/api/v1/tokens", json={"name": ""}, headers=headers)
    assert response.status_code == 400 and "name" in response.get_json()["error"]["message"]


def test_tokens_cli(settings_override: dict[str, Any], client: FlaskClient) -> None:
    from click.testing import CliRunner

    from daaas.portal.cli import main

    env = {"DAAAS_DATABASE_URL": settings_override["database_url"],
           "DAAAS_VAR_DIR": settings_override["var_dir"]}
    result = CliRunner().invoke(main, ["tokens", "create", "neutron", "--name", "ci"], env=env)
    assert result.exit_code == 0, result.output
    secret = result.output.strip()
    assert secret.startswith("daaas_")
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {secret}"}).get_json()
    assert me["username"] == "neutron"
    missing = CliRunner().invoke(main, ["tokens", "create", "nobody"], env=env)
    assert missing.exit_code == 1 and "no user called 'nobody'" in missing.output


def _body_routes() -> list[tuple[str, str]]:
    """Every documented (path, method) that takes a JSON body, with sample path parameters."""
    doc = openapi_document()
    return [(path.replace("{machine_id}", "m-none").replace("{username}", "neutron")
             .replace("{scope}/{name}", "group/beamline-i03")
             .replace("{environment}/{flavor}", "dawn/m1.xlarge"), method)
            for path, item in doc["paths"].items() for method, operation in item.items()
            if method != "parameters" and "requestBody" in operation]


def test_every_body_route_is_known_to_the_tests() -> None:
    assert sorted(_body_routes()) == [
        ("/admin/machines/bulk", "post"), ("/admin/pools/dawn/m1.xlarge", "patch"),
        ("/admin/pools/dawn/m1.xlarge", "put"), ("/admin/quotas/group/beamline-i03", "put"),
        ("/admin/users/neutron/disable", "post"),
        ("/context/m-none/activity", "post"), ("/context/m-none/bootstrap", "post"),
        ("/context/m-none/claim", "post"), ("/context/m-none/status", "post"),
        ("/jobs", "post"), ("/machines", "post"),
        ("/machines/m-none", "patch"),
        ("/machines/m-none/keep-running", "post"), ("/machines/m-none/links", "post"),
        ("/machines/m-none/members", "post"), ("/machines/m-none/sharing/policy", "put"),
        ("/ssh-keys", "post"), ("/tokens", "post")]


@pytest.mark.parametrize("raw", [b"\x00", b"[]", b"\"ccp4\"", b"{\"environment\": ", b"\xff{}"])
def test_a_body_that_is_not_a_json_object_is_400(client: FlaskClient, raw: bytes) -> None:
    headers = {**_session_headers(client), "Content-Type": "application/json"}
    admin = client.application.test_client()  # the admin console's routes: an administrator
    sign_in(admin, "admin", "admin-demo-pass")
    admin_headers = {"X-CSRF-Token": csrf_from(admin, "/analysis"),
                     "Content-Type": "application/json"}
    for path, method in _body_routes():
        by, sent = (admin, admin_headers) if path.startswith("/admin/") else (client, headers)
        response = by.open(f"/api/v1{path}", method=method.upper(), data=raw, headers=sent)
        assert response.status_code == 400, (path, raw, response.status_code)
        assert_matches(response.get_json(), "Error")
        message = response.get_json()["error"]["message"]
        assert "JSON" in message and "Send JSON like {" in message, (path, message)


@pytest.mark.parametrize(("path", "body", "expected"), [
    ("/machines", {}, "environment: field required"),
    ("/machines", {"flavor": "m1.large"}, "environment: field required"),
    ("/machines", {"environment": "ccp4", "flavor": 3}, "flavor: input should be a valid string"),
    ("/machines", {"environment": "ccp4", "experiment": True},
     "experiment: input should be a valid integer"),
    ("/tokens", {"name": ""}, "name: string should have at least 1 character"),
    ("/tokens", {"name": ["laptop"]}, "name: input should be a valid string"),
    ("/jobs", {"script": "#!/bin/sh\n", "cpus": "two"}, "cpus: input should be a valid integer"),
    ("/jobs", {"template": "list-data", "parameters": {"folder": None}},
     "parameters.folder: must be text or a number"),
    ("/context/m-none/status", {"status": "fine"},
     "status: input should be 'ready', 'failed' or 'pooled-ready'"),
    ("/context/m-none/bootstrap", {"token": 42}, "token: input should be a valid string"),
    ("/machines/m-none/keep-running", {"hours": "8"}, "hours: input should be a valid number"),
    ("/context/m-none/activity", {"cpu_percent": 3}, "sessions: field required"),
])
def test_a_bad_body_names_the_field(client: FlaskClient, path: str, body: Any,
                                    expected: str) -> None:
    headers = _session_headers(client)
    response = client.post(f"/api/v1{path}", json=body, headers=headers)
    assert response.status_code == 400
    assert_matches(response.get_json(), "Error")
    assert expected in response.get_json()["error"]["message"]


def test_an_empty_token_request_names_the_token_api(client: FlaskClient) -> None:
    headers = _session_headers(client)
    response = client.post("/api/v1/tokens", headers=headers)
    assert response.status_code == 201 and response.get_json()["name"] == "api"


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        return {node["$ref"]} if "$ref" in node else {r for v in node.values() for r in _refs(v)}
    if isinstance(node, list):
        return {r for v in node for r in _refs(v)}
    return set()


def test_the_components_are_the_models_json_schemas() -> None:
    """Each component is exactly the JSON schema pydantic gives one of the API's models (or a
    model they use); every body in the paths is a reference to one of them."""
    requests, replies = api_models()
    expected: dict[str, Any] = {}
    for model, mode in [*((m, "validation") for m in requests),
                        *((m, "serialization") for m in replies)]:
        schema = model.model_json_schema(ref_template=REF, mode=mode)  # type: ignore[arg-type]
        expected.update(schema.pop("$defs", {}))
        expected[model.__name__] = schema
    components = openapi_document()["components"]["schemas"]
    assert components == expected
    for domain in ("access", "api", "bootstrap", "experiments", "hpc", "machines"):
        module = importlib.import_module(f"daaas.portal.{domain}.openapi")
        assert not any(isinstance(value, dict) and value.get("type") == "object"
                       for value in vars(module).values()), f"{domain}: a hand-written schema"
    assert {"Machine", "LaunchRequest", "Job", "JobSubmission", "DesktopAccess", "Error",
            "Environment", "MachineSecrets", "StatusReport", "Experiment"} <= set(components)
    doc = openapi_document()
    assert _refs(doc["paths"]) <= {REF.format(model=name) for name in components}
    operations = [op for item in doc["paths"].values()
                  for method, op in item.items() if method != "parameters"]
    for operation in operations:
        for body in [*operation["responses"].values(), operation.get("requestBody", {})]:
            schema = body.get("content", {}).get("application/json", {}).get("schema")
            assert schema is None or set(schema) == {"$ref"}, (operation["summary"], body)
