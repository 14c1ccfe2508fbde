"""Alembic environment: runs migrations on the connection or URL the portal hands over."""

from alembic import context
from sqlalchemy import engine_from_config, pool

import daaas.portal.models  # noqa: F401  (registers every table)
from daaas.portal.db import Base

config = context.config
target_metadata = Base.metadata


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_config(config.get_section(config.config_ini_section) or {},
                                prefix="sqlalchemy.", poolclass=pool.NullPool)
    with engine.connect() as conn:
        _run(conn)


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(connection=connection, target_metadata=target_metadata,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


run_online()
