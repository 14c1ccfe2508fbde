"""Structured logs: with ``log_format = "json"`` a served request's log lines are JSON objects
carrying its request id (also in the X-Request-Id header), the user and the machine id."""

from __future__ import annotations

import io
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from flask import Flask

from daaas.portal import create_app
from daaas.portal.logs import configure
from tests.support.web import bearer, served


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    return {**settings_override, "provider": "memory", "log_format": "json"}


@pytest.fixture
def output(app: Flask) -> Iterator[io.StringIO]:
    """What the portal's log handler writes, configured as `daaas serve` configures it."""
    stream = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure(app.extensions["daaas"].settings, stream)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def get(url: str, **headers: str) -> tuple[int, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line written so far, each parsed as one JSON object (fails on any other line)."""
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_served_request_logs_json_with_its_id_user_and_machine(
        app: Flask, output: io.StringIO) -> None:
    machine_id = "0123456789abcdef0123456789abcdef"
    with served(app) as url:
        status, headers = get(f"{url}/api/v1/machines/{machine_id}",
                              **bearer(app, "scientist"))
        again, second = get(f"{url}/api/v1/machines/{machine_id}",
                            **{**bearer(app, "neutron"), "X-Request-Id": "lb-4711-abcdef"})
        _, forged = get(f"{url}/sign-in", **{"X-Request-Id": "bad id\" with quotes"})
    assert status == again == 404
    request_id = headers["X-Request-Id"]
    assert len(request_id) == 32 and second["X-Request-Id"] == "lb-4711-abcdef"
    assert forged["X-Request-Id"] not in ("", "bad id\" with quotes")
    logged = lines(output)
    ours = [line for line in logged if line["request_id"] == request_id]
    assert len(ours) == 1, logged
    (line,) = ours
    assert line["level"] == "INFO" and line["logger"] == "daaas.portal.lifecycle"
    assert line["user"] == "scientist" and line["machine_id"] == machine_id
    assert f"GET /api/v1/machines/{machine_id} -> 404" in line["message"]
    assert datetime.fromisoformat(line["timestamp"]).utcoffset() is not None
    theirs = [line for line in logged if line["request_id"] == "lb-4711-abcdef"]
    assert [line["user"] for line in theirs] == ["neutron"]


def test_outside_a_request_the_fields_are_null_and_extra_wins(output: io.StringIO) -> None:
    logging.getLogger("daaas.portal.machines.reconciler").warning(
        "machine %s lost", "m1", extra={"machine_id": "m1"})
    (line,) = lines(output)
    assert line["message"] == "machine m1 lost" and line["machine_id"] == "m1"
    assert line["request_id"] is None and line["user"] is None
    assert line["level"] == "WARNING"


def test_text_is_the_default(settings_override: dict[str, Any]) -> None:
    default = {k: v for k, v in settings_override.items() if k != "log_format"}
    settings = create_app(default).extensions["daaas"].settings
    assert settings.log_format == "text"
    stream = io.StringIO()
    handler = configure(settings, stream)
    try:
        logging.getLogger("daaas.portal").warning("plain")
    finally:
        logging.getLogger().removeHandler(handler)
    assert stream.getvalue().rstrip().endswith("WARNING daaas.portal: plain")
