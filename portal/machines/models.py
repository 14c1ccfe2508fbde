"""Machines, their state-change events and their one-time access tokens."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from daaas.catalogue import Environment
from daaas.portal.auth.models import User
from daaas.portal.db import Base, UTCDateTime, utcnow


class EnvironmentSnapshot(TypeDecorator[Environment]):
    """The catalogue entry a machine was launched from, stored as JSON and read back typed.

    This is the one place a stored environment is parsed (:meth:`Environment.from_snapshot`):
    the rest of the portal sees an :class:`~daaas.catalogue.Environment`, never a dict. Most
    machines share a few snapshots, and an Environment is immutable, so equal snapshots are
    parsed once (:func:`parse_snapshot`). Reading a row raises pydantic.ValidationError if its
    JSON is not an environment.
    """

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: Environment | None,
                           dialect: object) -> dict[str, Any] | None:
        return None if value is None else value.to_dict()

    def process_result_value(self, value: dict[str, Any] | None,
                             dialect: object) -> Environment | None:
        return None if value is None else parse_snapshot(json.dumps(value, sort_keys=True))


@lru_cache(maxsize=256)
def parse_snapshot(text: str) -> Environment:
    """Return the Environment of a stored snapshot given as canonical JSON text.

    Raises pydantic.ValidationError if it is not an environment (not cached).
    """
    return Environment.from_snapshot(json.loads(text))


class Machine(Base):
    """One analysis machine. Its ``id`` is also its identity at the provider; its ``name`` is
    what its owner calls it (see :mod:`daaas.portal.machines.naming`)."""

    __tablename__ = "machines"
    #: The lists' orders (newest first): everyone's, a user's, an experiment's sessions.
    __table_args__ = (Index("ix_machines_created_at_id", "created_at", "id"),
                      Index("ix_machines_user_id_created_at", "user_id", "created_at", "id"),
                      Index("ix_machines_experiment_id_created_at", "experiment_id",
                            "created_at", "id"),
                      # the reconciler: its reads by state need only this index (covering),
                      # not the rows with their environment snapshots; and the expiry
                      Index("ix_machines_state_id", "state", "id"),
                      Index("ix_machines_expires_at", "expires_at"),
                      # warm pools: a launch's claim and the worker's refill (migration 0020)
                      Index("ix_machines_pool_state", "pool", "state"),
                      # the worker's look-up of ready machines without an address (0021;
                      # with pool since 0025: the look-up leaves pooled machines out)
                      Index("ix_machines_unaddressed", "state", "pool",
                            sqlite_where=text("address IS NULL"),
                            postgresql_where=text("address IS NULL")),
                      # a launch's admission (0025): the quota ledger's count per owner,
                      # flavor and state, the owner's machine count and names in use, each
                      # from an index alone (a row holds its environment snapshot)
                      Index("ix_machines_user_flavor_state", "user_id", "flavor", "state"),
                      Index("ix_machines_user_state_name", "user_id", "state", "name"),
                      # the idle-stop check's read of the ready machines, from the index alone
                      # (state first, pool last: the address look-up must keep its own)
                      Index("ix_machines_idle", "state", "id", "state_changed_at",
                            "desktop_seen_at", "pool"))

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(80), default="")
    environment_name: Mapped[str] = mapped_column(String(64))
    environment: Mapped[Environment] = mapped_column(EnvironmentSnapshot)
    flavor: Mapped[str] = mapped_column(String(100))
    provider: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(20))  # indexed with id: ix_machines_state_id
    error_reason: Mapped[str] = mapped_column(Text, default="")
    cleanup_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    experiment_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    experiment: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    state_changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: When the desktop proxy last saw a connection to it (written at most once a minute)
    desktop_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Why an administrator stopped or deleted it, for its owner (admin console's bulk actions)
    admin_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    #: Warm pools (issue 20, :mod:`daaas.portal.pools`): the pool ("environment/flavor") a
    #: machine waits in, owned by the pool account; None once claimed, and never set again
    pool: Mapped[str | None] = mapped_column(String(200), nullable=True)
    #: When a launch claimed it from its pool, and when the claimer was set up on it
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    personalised_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: Where the access paths reach it (:mod:`daaas.portal.machines.address`): recorded by the
    #: worker when it observes the machine ready, cleared when the poll sees it leave ready;
    #: pages read it instead of asking the provider (migration 0021)
    address: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)

    user: Mapped[User] = relationship()
    events: Mapped[list[MachineEvent]] = relationship(
        back_populates="machine", order_by="MachineEvent.id", cascade="all, delete-orphan")


class MachineEvent(Base):
    """One state change of a machine, with a UTC timestamp and a message for people."""

    __tablename__ = "machine_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    machine_id: Mapped[str] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"),
                                            index=True)
    from_state: Mapped[str | None] = mapped_column(String(20), nullable=True)
    to_state: Mapped[str] = mapped_column(String(20))
    message: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    machine: Mapped[Machine] = relationship(back_populates="events")


class AccessToken(Base):
    """A one-time token that lets the websockify proxy open one desktop connection.

    The desktop is reached at ``socket_path`` (a Unix socket on the portal's host) when it is
    set, else at ``host:port``.
    """

    __tablename__ = "access_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    machine_id: Mapped[str] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"),
                                            index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    socket_path: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: What the connection may do (:class:`daaas.portal.sharing.models.Role`), and the share
    #: link it came through, if any (sharing issue, migration 0016)
    role: Mapped[str] = mapped_column(String(10), default="owner", server_default="owner")
    link_id: Mapped[int | None] = mapped_column(
        ForeignKey("share_links.id", ondelete="SET NULL"), nullable=True)


class LaunchKey(Base):
    """An idempotency key of one launch: a user's ``Idempotency-Key`` header (API) or the
    launch form's one-time id, with a SHA-256 of what was asked. The same key again finds
    ``machine_id`` instead of launching a second machine; the unique (user, key) constraint
    keeps it one even if two requests got past the launch lock
    (:func:`daaas.portal.machines.service.admit_launch`)."""

    __tablename__ = "launch_keys"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    machine_id: Mapped[str] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
