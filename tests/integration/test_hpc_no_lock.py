"""Submitting and cancelling a job ask Slurm while the request holds no lock and no
transaction (issue 19): what the request read and wrote before (the token's use) is committed
first, so a worker's transaction (SQLite: the one write lock) or another request with the same
token (PostgreSQL: the token's row) never waits for the cluster. A batch-system double
registered as the HPC backend tries, from a connection of its own, to take the lock at each
call, without waiting; on PostgreSQL it also counts the database's other connections that are
inside a transaction (SQLite cannot show another connection's read transaction)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from daaas.portal.config import Settings
from daaas.portal.hpc.backend import HPC_BACKENDS, HpcBackend, JobInfo, JobSpec
from tests.support.web import bearer


class LockProbe(HpcBackend):
    """A batch system that notes, at each call, whether the database could be written."""

    cluster = "probe"
    url: ClassVar[str] = ""
    seen: ClassVar[list[str]] = []

    @classmethod
    def from_settings(cls, settings: Settings) -> LockProbe:
        """Return the double (no settings read)."""
        return cls()

    def _note(self, call: str) -> None:
        self.seen.append(f"{call}: {'free' if writable(self.url) else 'locked'}")
        if self.url.startswith("postgresql"):
            self.seen.append(f"{call}: {open_transactions(self.url)} open")

    def submit(self, username: str, spec: JobSpec) -> int:
        """Note the lock; return job 7."""
        self._note("submit")
        return 7

    def jobs(self, username: str) -> list[JobInfo]:
        """Nothing listed."""
        return []

    def job(self, username: str, job_id: int) -> JobInfo | None:
        """Note the lock; the job is pending and the user's."""
        self._note("job")
        return JobInfo(job_id, "probe", username, None, "PENDING", "", "", None, "/tmp",
                       "/tmp/out", None, None, None)

    def release(self, username: str, job_id: int) -> None:
        """Note the lock."""
        self._note("release")

    def cancel(self, username: str, job_id: int) -> None:
        """Note the lock."""
        self._note("cancel")


def writable(url: str) -> bool:
    """Return True when another connection can write the API tokens now (never waits long)."""
    if url.startswith("sqlite"):
        connection = sqlite3.connect(url.split("///", 1)[1], timeout=0)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            connection.close()
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(text("SET LOCAL lock_timeout = '300ms'"))
            connection.execute(text("UPDATE api_tokens SET name = name"))
            connection.rollback()
        return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


def open_transactions(url: str) -> int:
    """Return how many other connections to the database of ``url`` (PostgreSQL) are inside
    a transaction now."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'")) or 0)
    finally:
        engine.dispose()


@pytest.fixture(autouse=True)
def _probe() -> Iterator[None]:
    LockProbe.seen = []
    with HPC_BACKENDS.registered("probe", LockProbe):
        yield


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The conftest's settings on the in-memory provider and the probing batch system."""
    return {**settings_override, "provider": "memory", "hpc_backend": "probe"}


def test_slurm_is_asked_with_no_lock_and_no_transaction_held(app: Flask) -> None:
    LockProbe.url = app.extensions["daaas"].engine.url.render_as_string(hide_password=False)
    headers = bearer(app, "scientist")
    client = app.test_client()
    assert client.get("/api/v1/jobs", headers=headers).status_code == 200  # the token is used
    submitted = client.post("/api/v1/jobs", json={"script": "#!/bin/sh\n"}, headers=headers)
    assert submitted.status_code == 201, submitted.get_json()
    assert client.delete("/api/v1/jobs/7", headers=headers).status_code == 202
    calls = ["submit", "job", "release", "cancel", "job"]
    assert [seen for seen in LockProbe.seen if seen.endswith("free") or
            seen.endswith("locked")] == [f"{call}: free" for call in calls]
    if LockProbe.url.startswith("postgresql"):
        assert [seen for seen in LockProbe.seen if seen.endswith("open")] == [
            f"{call}: 0 open" for call in calls]
    assert writable(LockProbe.url)  # the probe can tell: nothing is left held either
