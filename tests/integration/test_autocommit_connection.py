"""The one autocommit connection the reconciler's reads and the PostgreSQL claims keep
(``portal.db.AutocommitConnection``): opened on first use, opened again once after the server
drops it, and the error raised when the second attempt fails too."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from daaas.portal.db import AutocommitConnection, make_engine
from daaas.portal.machines.claims import Claims, _AdvisoryLocks


def test_a_connection_the_server_drops_is_opened_again_once(database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("only a server can drop a connection")
    engine = make_engine(database_url)
    kept = AutocommitConnection(engine)
    pid = kept.run(lambda c: c.execute(text("SELECT pg_backend_pid()")).scalar())
    assert kept.run(lambda c: c.execute(text("SELECT pg_backend_pid()")).scalar()) == pid
    with engine.connect() as other:
        assert other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    again = kept.run(lambda c: c.execute(text("SELECT pg_backend_pid()")).scalar())
    assert again != pid
    engine.dispose()


def test_two_failures_raise_the_database_error_and_others_are_not_retried(
        database_url: str) -> None:
    kept = AutocommitConnection(make_engine(database_url))
    calls: list[Connection] = []

    def broken(connection: Connection) -> object:
        calls.append(connection)
        return connection.execute(text("SELECT * FROM no_such_table")).all()

    with pytest.raises(DBAPIError):
        kept.run(broken)
    assert len(calls) == 2 and calls[0] is not calls[1]
    assert kept.connection is None

    def wrong(connection: Connection) -> object:
        calls.append(connection)
        raise ValueError("not the database's")

    calls.clear()
    with pytest.raises(ValueError):
        kept.run(wrong)
    assert len(calls) == 1 and kept.connection is calls[0]


def test_claims_survive_a_dropped_connection_and_its_locks_go_with_it(
        database_url: str) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("advisory locks are PostgreSQL's")
    engine = make_engine(database_url)
    first, second = Claims(engine), Claims(engine)
    assert first.shared is not None and second.shared is not None
    assert isinstance(first.shared, _AdvisoryLocks)
    assert first.shared.acquire("m-1")
    assert not second.shared.acquire("m-1")
    pid = first.shared.connection.run(lambda c: c.execute(text("SELECT pg_backend_pid()")).scalar())
    with engine.connect() as other:
        assert other.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
    assert second.shared.acquire("m-1")  # the dropped connection's lock went with it
    assert not first.shared.acquire("m-1")  # reopened, and sees the other's claim
    second.shared.release("m-1")
    assert first.shared.acquire("m-1")
    first.shared.release("m-1")
    engine.dispose()
