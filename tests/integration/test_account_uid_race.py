"""Accounts created at the same moment get distinct uids, on SQLite and PostgreSQL.

A new account takes the next free POSIX uid. Reading the highest uid and inserting the next
must be one step: in CI a test's account and the worker's warm-pool account were created at
once, both took 20003, and the second failed on ``users.uid`` UNIQUE. Here eight accounts are
created in eight threads, each with its own session, released together by a barrier, and the
warm-pool account beside them; all are made, with eight + one different uids.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from daaas.portal.auth.models import User
from daaas.portal.auth.service import create_user
from daaas.portal.config import load_settings
from daaas.portal.db import make_engine, make_session_factory, unit_of_work
from daaas.portal.pools.service import POOL_ACCOUNT, pool_account
from tests.support.machines import at_once


def test_accounts_created_at_once_get_distinct_uids(demo_database_url: str,
                                                     tmp_path: Path) -> None:
    settings = load_settings({"var_dir": str(tmp_path), "database_url": demo_database_url},
                             environ={})
    engine = make_engine(demo_database_url)
    factory = make_session_factory(engine)

    def create(i: int) -> int:
        with unit_of_work(factory) as db:
            if i == 8:
                return pool_account(db, settings).uid
            return create_user(db, settings, f"racer{i}", None).uid

    try:
        uids = at_once(9, create)
        with unit_of_work(factory) as db:
            stored = {u.username: u.uid for u in db.scalars(select(User))}
    finally:
        engine.dispose()
    assert len(set(uids)) == 9, uids
    assert {stored[f"racer{i}"] for i in range(8)} | {stored[POOL_ACCOUNT]} == set(uids)
    assert min(uids) >= settings.first_uid
