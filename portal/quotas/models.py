"""Quotas as administrators set them on the Quotas page (the settings give the rest).

A row is one quota of one user or one group. Each limit is optional: an empty one means this
quota says nothing about that resource. See :mod:`daaas.portal.quotas.service` for how the
quotas of a user and of their groups combine.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from daaas.portal.db import Base, UTCDateTime, utcnow


class QuotaRow(Base):
    """One user's or one group's quota as an administrator set it (``scope`` is "user" or
    "group", ``name`` the user name or group name). ``gpus`` maps a GPU model (as the
    ``flavor_sizes`` setting names it, "NVIDIA A100") to how many."""

    __tablename__ = "quotas"
    __table_args__ = (UniqueConstraint("scope", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(100))
    machines: Mapped[int | None] = mapped_column(Integer, nullable=True)
    vcpus: Mapped[int | None] = mapped_column(Integer, nullable=True)
    memory_gib: Mapped[int | None] = mapped_column(Integer, nullable=True)
    storage_gib: Mapped[int | None] = mapped_column(Integer, nullable=True)
    gpus: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64), default="")
