"""A database connection in one transaction, from either an Engine or a sessionmaker."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

TokenStore = Engine | sessionmaker[Session]


@contextmanager
def connection(store: TokenStore) -> Iterator[Connection]:
    """Yield a connection inside a transaction: committed at the end, rolled back on error.

    Raises whatever SQLAlchemy raises when the database cannot be reached.
    """
    if isinstance(store, Engine):
        with store.begin() as conn:
            yield conn
        return
    with store() as session, session.begin():
        yield session.connection()
