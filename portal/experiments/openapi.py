"""OpenAPI path items of the experiments API; the bodies are the models in :mod:`.schemas`."""

from __future__ import annotations

from typing import Any

from daaas.portal.api.schema import ID_SCHEMA, content, errors
from daaas.portal.experiments.schemas import Experiment, ExperimentList

PATHS: dict[str, Any] = {
    "/experiments": {"get": {
        "summary": "The user's experiments (member or instrument scientist), current first",
        "responses": {"200": content(ExperimentList, "OK"), **errors(401, 503)}}},
    "/experiments/{investigation_id}": {
        "parameters": [{"name": "investigation_id", "in": "path", "required": True,
                        "schema": ID_SCHEMA}],
        "get": {"summary": "One experiment with every session that used it (provenance); "
                           "404 alike for a missing experiment and one not the user's",
                "responses": {"200": content(Experiment, "OK"),
                              **errors(401, 404, 503)}}},
}
