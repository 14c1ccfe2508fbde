"""Warm pools in the database: the pool account, a launch's claim, the pools' figures.

A pooled machine is a ``machines`` row owned by the pool account (a disabled account no one
signs in as) with ``pool`` set. A launch claims one in its own transaction (after admission,
so the claimer's quotas count it as any launch): on PostgreSQL ``SELECT … FOR UPDATE SKIP
LOCKED`` gives concurrent launches different machines; on SQLite the launch already holds the
database's one write lock (:func:`daaas.portal.machines.service.lock_launches`). The claim
clears ``pool`` and makes the claimer the owner in that one commit, so a claimed machine is
never back in the pool whatever happens afterwards.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from daaas.catalogue import Environment
from daaas.portal.auth.models import User
from daaas.portal.auth.service import lock_accounts, next_uid
from daaas.portal.config import Settings
from daaas.portal.machines.models import Machine
from daaas.portal.machines.states import State
from daaas.portal.pools.rules import pool_key
from daaas.portal.pools.sizes import configured_size as configured_size  # re-exported

#: The account that owns pooled machines; disabled, without a password.
POOL_ACCOUNT = "daaas-pool"
#: The worker's figures per pool, read by the cards and the admin page
FILE_NAME = "pools.json"
#: Figures older than this are not believed (the worker has stopped)
STALE_SECONDS = 120
#: The event a launch records when its pool had no machine ready (a miss, counted by /metrics)
MISS_MESSAGE = "no machine was ready in its warm pool"


def pool_account(db: Session, settings: Settings) -> User:
    """Return the pool account, created on first use (disabled: it cannot sign in; its
    uid is the next free one, as for any new account). Raises only database errors."""
    user = db.scalar(select(User).where(User.username == POOL_ACCOUNT))
    if user is None:
        lock_accounts(db)
        user = db.scalar(select(User).where(User.username == POOL_ACCOUNT))
    if user is None:
        uid = next_uid(db, settings)
        user = User(username=POOL_ACCOUNT, display_name="Warm pool", password_hash=None,
                    identity_source="pool", uid=uid, gid=uid, is_active=False,
                    disabled_reason="the warm pools' account: owns machines no one has "
                    "claimed yet", groups=[], instruments=[])
        db.add(user)
        db.flush()
    return user


def claim(db: Session, settings: Settings, user: User, environment: Environment,
          flavor: str, now: datetime) -> Machine | None:
    """Claim a ready pooled machine of ``environment`` on ``flavor`` for ``user``; returns it,
    now the user's and ``contextualising`` (the worker personalises it), or None when the
    pool has none ready. The caller names it, sets its lifetime and commits. Raises only
    database errors.
    """
    if not settings.warm_pools:
        return None
    youngest = now - timedelta(minutes=settings.warm_pool_max_age_minutes)
    query = (select(Machine).where(
        Machine.pool == pool_key(environment.name, flavor), Machine.state == State.READY.value,
        Machine.provider == settings.provider, Machine.cleanup_pending.is_(False),
        Machine.created_at > youngest).order_by(Machine.created_at).limit(1))
    if db.get_bind().dialect.name != "sqlite":
        query = query.with_for_update(skip_locked=True)
    machine = db.scalar(query)
    if machine is None:
        return None
    machine.pool, machine.user, machine.user_id, machine.claimed_at = None, user, user.id, now
    return machine


def has_ready(db: Session, settings: Settings, environment: Environment, flavor: str,
              now: datetime) -> bool:
    """Return True when a pooled machine of ``environment`` on ``flavor`` is ready to be
    claimed now (it holds its GPU already, so a launch needs no free one). Raises only
    database errors."""
    if not settings.warm_pools:
        return False
    youngest = now - timedelta(minutes=settings.warm_pool_max_age_minutes)
    return db.scalar(select(Machine.id).where(
        Machine.pool == pool_key(environment.name, flavor), Machine.state == State.READY.value,
        Machine.provider == settings.provider, Machine.cleanup_pending.is_(False),
        Machine.created_at > youngest).limit(1)) is not None


@dataclass(frozen=True)
class PoolFigures:
    """What the worker last counted of one pool."""

    key: str
    size: int
    ready: int
    starting: int
    claimed_last_hour: int
    launches_last_hour: int
    #: Session slots (and GPUs) the pool's machines hold now
    held_sessions: int
    held_gpus: int
    #: The median seconds from click to ready of the last launches of this kind (None: none)
    expected_wait: float | None = None

    @property
    def hit_rate(self) -> float | None:
        """Return the share of last hour's launches of this pool's kind served from it, or
        None with no launch. Raises nothing."""
        if not self.launches_last_hour:
            return None
        return self.claimed_last_hour / self.launches_last_hour


def figures_path(settings: Settings) -> Path:
    """Return where the worker writes the pools' figures. Raises nothing."""
    return settings.var_path / FILE_NAME


def write_figures(path: Path, figures: list[PoolFigures], now: datetime,
                  waits: dict[str, float] | None = None) -> None:
    """Record ``figures`` and the expected ``waits`` (seconds, by "environment/flavor"; for
    the cards) atomically. Raises OSError when the file cannot be written."""
    _write_json(path, {"read_at": now.isoformat(), "pools": [asdict(f) for f in figures],
                       "waits": waits or {}})


def _write_json(path: Path, data: object) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(data), encoding="utf-8")
    os.replace(temporary, path)


def read_waits(settings: Settings, now: datetime) -> dict[str, float]:
    """Return the expected wait (seconds from click to ready) by "environment/flavor" as the
    worker last computed it; empty when stale or unreadable. Raises nothing."""
    try:
        data = json.loads(figures_path(settings).read_text(encoding="utf-8"))
        if now - datetime.fromisoformat(data["read_at"]) > timedelta(seconds=STALE_SECONDS):
            return {}
        return {str(key): float(value) for key, value in data.get("waits", {}).items()}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def read_figures(settings: Settings, now: datetime) -> dict[str, PoolFigures]:
    """Return the figures the worker last wrote, by pool key; empty when there are none,
    they cannot be read or the worker has not written them for :data:`STALE_SECONDS`.
    Raises nothing."""
    try:
        data = json.loads(figures_path(settings).read_text(encoding="utf-8"))
        if now - datetime.fromisoformat(data["read_at"]) > timedelta(seconds=STALE_SECONDS):
            return {}
        return {item["key"]: PoolFigures(**item) for item in data["pools"]}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return {}


def instant(settings: Settings, environment: str, flavor: str, now: datetime) -> bool:
    """Return True when the worker last saw a ready machine waiting in the pool of
    ``environment`` on ``flavor`` (the card's "instant"). Raises nothing."""
    found = read_figures(settings, now).get(pool_key(environment, flavor))
    return found is not None and found.ready > 0
