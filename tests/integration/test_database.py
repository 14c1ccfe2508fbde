"""Migrations: from empty to newest, and the models never drift from the migrations."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from daaas.portal.db import Base, make_engine
from daaas.portal.migrate import is_current, upgrade


def test_upgrade_creates_schema_and_is_idempotent(database_url: str) -> None:
    engine = make_engine(database_url)
    assert not is_current(engine)
    upgrade(engine)
    upgrade(engine)
    assert is_current(engine)
    assert {"users", "api_tokens", "sign_in_attempts"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_models_match_migrations(database_url: str) -> None:
    import daaas.portal.models  # noqa: F401

    engine = make_engine(database_url)
    upgrade(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == [], f"models differ from migrations; add a migration: {diff}"
