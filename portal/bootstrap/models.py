"""One row per cloud-init machine: its hashed bootstrap and report tokens and what it reported."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from daaas.portal.db import Base, UTCDateTime, utcnow


class MachineContext(Base):
    """The bootstrap exchange of one machine. Only SHA-256 digests of tokens are stored.

    ``used_at`` is set when the bootstrap token is traded for the machine's secrets (it is then
    dead); ``report_token_hash`` is the token the machine reports its status with afterwards;
    ``reported_*`` hold its one report, which the reconciler applies.
    """

    __tablename__ = "machine_contexts"

    machine_id: Mapped[str] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"),
                                            primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    report_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True,
                                                          unique=True)
    reported_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    reported_reason: Mapped[str] = mapped_column(Text, default="")
    reported_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
