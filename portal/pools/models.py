"""What administrators set for a warm pool, in the database (migration 0023), so every web
host and worker sharing the database agrees: a size replacing the setting's and a schedule
replacing the setting's (either may be left to the settings)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from daaas.portal.db import Base, UTCDateTime, utcnow


class PoolSetting(Base):
    """An administrator's choices for the pool ``key`` ("environment/flavor"): ``size`` (None:
    the setting ``warm_pools``'s) and ``schedule`` (None: the setting
    ``warm_pool_schedules``'s; a list of {"days", "start", "end", "size"}, empty for none)."""

    __tablename__ = "pool_settings"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    schedule: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64), default="")
