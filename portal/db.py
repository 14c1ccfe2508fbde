"""Database engine, sessions and the declarative base shared by every domain's models."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, MetaData, create_engine, event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.pool import NullPool
from sqlalchemy.types import TypeDecorator

T = TypeVar("T")

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base for all portal tables."""

    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC and always returned timezone-aware (UTC).

    SQLite drops time zones; this keeps comparisons between stored and fresh values correct.
    """

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use daaas.portal.db.utcnow()")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """Return the current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def make_engine(url: str, *, pooled: bool = True) -> Engine:
    """Create an engine for ``url``; SQLite gets WAL and foreign keys switched on.

    ``pooled=False`` opens a connection per use and keeps none idle (a backend's own occasional
    reads beside the portal's main engine).
    """
    pool: dict[str, Any] = {} if pooled else {"poolclass": NullPool}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30},
                               **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, **pool)


def worker_session_factory(url: str) -> sessionmaker[Session]:
    """Return a session factory for background workers.

    On SQLite every transaction starts with BEGIN IMMEDIATE, taking the write lock up front, so
    two workers serialise instead of failing when both try to upgrade a read to a write
    (PostgreSQL workers use row locks with SKIP LOCKED instead).
    """
    engine = make_engine(url)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _autocommit_driver)
        event.listen(engine, "begin", _begin_immediate)
    return make_session_factory(engine)


def _autocommit_driver(dbapi_connection: object, _record: object) -> None:
    dbapi_connection.isolation_level = None  # type: ignore[attr-defined]


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: object, _record: object) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Return a session factory bound to ``engine`` (objects stay usable after commit)."""
    return sessionmaker(bind=engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """Yield a session; commit when the block ends normally, roll back on any exception.

    Used by the command line and background work; web requests use the request lifecycle in
    :mod:`daaas.portal.lifecycle`, the other place that commits.
    """
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def end_transaction(session: Session) -> None:
    """Commit what ``session`` has written so far and end its transaction, so that none is
    open while another system (Slurm, ICAT, a cloud) is asked; what the caller writes after
    the call is committed or rolled back by the session's owner as usual.

    Raises what the commit raises (the session is then rolled back by its owner).
    """
    session.commit()


class AutocommitConnection:
    """One connection of an engine kept in autocommit, outside any transaction: opened on
    first use, and opened again once after a failure (e.g. a connection the server dropped)."""

    def __init__(self, engine: Engine,
                 retry_on: tuple[type[Exception], ...] = (DBAPIError,)) -> None:
        """``retry_on``: the errors after which the connection is dropped and the work is
        tried once more on a new one."""
        self.engine = engine
        self.retry_on = retry_on
        self.connection: Connection | None = None

    def run(self, work: Callable[[Connection], T]) -> T:
        """Return ``work(connection)``. Raises the error of the second attempt when both fail
        with one of ``retry_on`` (any other error at once)."""
        for attempt in (1, 2):
            try:
                if self.connection is None:
                    self.connection = self.engine.connect().execution_options(
                        isolation_level="AUTOCOMMIT")
                return work(self.connection)
            except self.retry_on:
                if self.connection is not None:
                    self.connection.invalidate()
                    self.connection.close()
                self.connection = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable: the loop returns or raises")
