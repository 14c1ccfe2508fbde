"""OpenAPI path items and schemas of the experiments API."""

from __future__ import annotations

from typing import Any

EXPERIMENT = {
    "type": "object",
    "required": ["id", "facility", "name", "visit_id", "title", "instruments", "start_date",
                 "end_date", "current", "members", "data_path"],
    "properties": {
        "id": {"type": "integer"}, "facility": {"type": "string"}, "name": {"type": "string"},
        "visit_id": {"type": "string"}, "title": {"type": "string"},
        "instruments": {"type": "array", "items": {"type": "string"}},
        "start_date": {"type": ["string", "null"]}, "end_date": {"type": ["string", "null"]},
        "current": {"type": "boolean"}, "data_path": {"type": "string"},
        "members": {"type": "array", "items": {"type": "object",
                                               "required": ["name", "full_name", "role"]}},
        "sessions": {"type": "array", "items": {"$ref": "#/components/schemas/Machine"}},
    },
}
SCHEMAS: dict[str, Any] = {
    "Experiment": EXPERIMENT,
    "ExperimentList": {"type": "object", "required": ["experiments"], "properties": {
        "experiments": {"type": "array", "items": {"$ref": "#/components/schemas/Experiment"}}}},
}


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


PATHS: dict[str, Any] = {
    "/experiments": {"get": {
        "summary": "The user's experiments (member or instrument scientist), current first",
        "responses": {"200": _json("ExperimentList", "OK"),
                      **{str(c): _json("Error", "Error") for c in (401, 503)}}}},
    "/experiments/{investigation_id}": {
        "parameters": [{"name": "investigation_id", "in": "path", "required": True,
                        "schema": {"type": "integer"}}],
        "get": {"summary": "One experiment with every session that used it (provenance)",
                "responses": {"200": _json("Experiment", "OK"),
                              **{str(c): _json("Error", "Error")
                                 for c in (401, 403, 404, 503)}}}},
}
