"""Signing in and calling the API as a person or a script does, for the integration tests."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import jsonschema
import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from daaas.portal.api.openapi import openapi_document
from daaas.portal.db import unit_of_work


def csrf_from(client: FlaskClient, path: str = "/sign-in") -> str:
    """Load ``path`` and return the CSRF token in its first form."""
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def sign_in(client: FlaskClient, username: str, password: str) -> Any:
    """Sign in through the real form; returns the response."""
    token = csrf_from(client)
    return client.post("/sign-in", data={"username": username, "password": password,
                                         "csrf_token": token})


def openapi_schema(name: str) -> dict[str, Any]:
    doc = openapi_document()
    return {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}


def assert_matches(body: Any, name: str) -> None:
    jsonschema.validate(body, openapi_schema(name))


def api_token(app: Flask, username: str) -> str:
    from daaas.portal.auth.service import create_token, get_user

    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        return create_token(db, get_user(db, username), "test", 1)[1]


def bearer(app: Flask, username: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_token(app, username)}"}


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 with a threading werkzeug server (truly concurrent requests);
    yield its base URL and stop the server on exit."""
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        thread.join(5)


def browser_signed_in(server: str, username: str = "scientist") -> tuple[requests.Session,
                                                                         dict[str, str]]:
    """Sign ``username`` (password ``<username>-demo``) in through the form of the portal
    served at ``server``; return the browser and the headers its page's JavaScript sends.

    A browser session writes nothing to the database before the launch itself (its last use
    is recorded at most every 30 s), unlike an API token, whose row each request updates:
    those updates would line concurrent requests up by themselves and hide a missing lock.
    """
    browser = requests.Session()
    page = browser.get(f"{server}/sign-in", timeout=30).text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    signed = browser.post(f"{server}/sign-in", timeout=30, data={
        "username": username, "password": f"{username}-demo", "csrf_token": token.group(1)})
    assert signed.ok
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"',
                     browser.get(f"{server}/analysis", timeout=30).text)
    assert csrf
    return browser, {"X-CSRF-Token": csrf.group(1), "Accept": "application/json"}
