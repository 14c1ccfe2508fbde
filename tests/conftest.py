"""Shared fixtures: a migrated database on SQLite and on a real PostgreSQL, and an app on it.

PostgreSQL comes from ``DAAAS_TEST_POSTGRES_URL`` (the README's test command starts a server
and sets it). Without it the PostgreSQL half is skipped locally but fails in CI.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

from daaas.portal import create_app
from daaas.portal.db import make_engine, make_session_factory, unit_of_work
from daaas.portal.demo import create_demo_users
from daaas.portal.migrate import upgrade
from tests.support.cloudinit import require_cloudinit_python
from tests.support.paths import OUTPUT, passable
from tests.support.providers import register_doubles


def pytest_configure(config: pytest.Config) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own DAAAS_* settings out of the tests."""
    for key in list(os.environ):
        if key.startswith("DAAAS_") and not key.startswith("DAAAS_TEST_"):
            monkeypatch.delenv(key)


@pytest.fixture(autouse=True)
def _keep_umask() -> Iterator[None]:
    """Give every test the umask it started with: `daaas serve` run in-process (CliRunner)
    sets 077 for the whole process."""
    umask = os.umask(0o022)
    os.umask(umask)
    yield
    os.umask(umask)


@pytest.fixture
def tmp_path(tmp_path: Path) -> Path:
    """pytest's per-test folder, which other accounts may pass through (see
    :func:`tests.support.paths.passable`)."""
    return passable(tmp_path)


@pytest.fixture(scope="session", autouse=True)
def _provider_doubles() -> Iterator[None]:
    """Make the provider doubles (tests.support.providers: "memory", "failing", …) choosable in
    settings for every test; the portal itself never registers them."""
    with register_doubles():
        yield


def postgres_admin_url() -> str | None:
    """Return the test PostgreSQL URL, or None (skip locally, fail in CI)."""
    url = os.environ.get("DAAAS_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("CI"):
        pytest.fail("CI must test PostgreSQL: DAAAS_TEST_POSTGRES_URL is not set. "
                    "Run the README's test command, which starts PostgreSQL.")
    pytest.skip("DAAAS_TEST_POSTGRES_URL not set (the README's test command sets it)")
    return None


def _migrate_with_demo_users(url: str, var_dir: Path) -> None:
    from daaas.portal.config import load_settings
    from daaas.portal.experiments.demo import create_demo_experiments

    engine = make_engine(url)
    upgrade(engine)
    settings = load_settings({"database_url": url, "var_dir": str(var_dir)}, environ={})
    with unit_of_work(make_session_factory(engine)) as session:
        create_demo_users(session, settings)
        create_demo_experiments(session, settings)
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file with the demo users, copied for each test."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite"
    _migrate_with_demo_users(f"sqlite:///{path}", path.parent / "var")
    return path


@pytest.fixture(scope="session")
def postgres_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A migrated PostgreSQL database with the demo users, used as CREATE DATABASE template."""
    admin_url = postgres_admin_url()
    assert admin_url
    name = f"daaas_template_{uuid.uuid4().hex[:8]}"
    _create_database(admin_url, name)
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    _migrate_with_demo_users(url, tmp_path_factory.mktemp("pg-template") / "var")
    yield name
    _drop_database(admin_url, name)


def _admin_engine(admin_url: str) -> Engine:
    """An autocommit engine for CREATE/DROP DATABASE whose statements give up after a minute
    (a failed test rather than a run stalled on a lock)."""
    return create_engine(admin_url, isolation_level="AUTOCOMMIT",
                         connect_args={"options": "-c statement_timeout=60000"})


def _create_database(admin_url: str, name: str, template: str | None = None) -> None:
    admin = _admin_engine(admin_url)
    with admin.connect() as conn:
        suffix = f' TEMPLATE "{template}"' if template else ""
        conn.execute(text(f'CREATE DATABASE "{name}"{suffix}'))
    admin.dispose()


def _drop_database(admin_url: str, name: str) -> None:
    admin = _admin_engine(admin_url)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _fresh_database(request: pytest.FixtureRequest, tmp_path: Path,
                    populated: bool) -> Iterator[str]:
    if request.param == "sqlite":
        path = tmp_path / "test.sqlite"
        if populated:
            shutil.copy(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    admin_url = postgres_admin_url()
    assert admin_url
    template = request.getfixturevalue("postgres_template") if populated else None
    name = "daaas_t_" + re.sub(r"\W", "", uuid.uuid4().hex[:12])
    _create_database(admin_url, name, template)
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        _drop_database(admin_url, name)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database of each kind; yields its SQLAlchemy URL."""
    yield from _fresh_database(request, tmp_path, populated=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def demo_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database of each kind, migrated, with the demo users; yields its URL."""
    yield from _fresh_database(request, tmp_path, populated=True)


@pytest.fixture
def settings_override(demo_database_url: str, tmp_path: Path) -> dict[str, Any]:
    """Configuration for a test portal on a fresh demo database."""
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    return {"database_url": demo_database_url, "var_dir": str(var_dir),
            "secret_key": "test-secret-key"}


@pytest.fixture
def app(settings_override: dict[str, Any]) -> Iterator[Flask]:
    """A portal application on the shipped demo catalogue."""
    application = create_app(settings_override)
    yield application
    application.extensions["daaas"].engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client (not signed in)."""
    return app.test_client()


@pytest.fixture(scope="module")
def cloudinit_python() -> str:
    """Debian's python3 with the cloudinit module (skips, saying what to install, without it)."""
    return require_cloudinit_python()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """A headless Debian Chromium with a fresh profile, one for the whole test session."""
    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package.")
        pytest.skip(f"{CHROMIUM} not installed")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="daaas-chromium-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True,
            viewport={"width": 1280, "height": 860})
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)
