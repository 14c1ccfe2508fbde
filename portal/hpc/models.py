"""Jobs submitted through the portal: where they came from, and their last known state."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from daaas.portal.auth.models import User
from daaas.portal.db import Base, UTCDateTime, utcnow


class HpcJob(Base):
    """One batch job the portal submitted for a user; Slurm stays the truth about its state.

    ``machine_id`` and ``experiment_id`` say which session (and its experiment) it came from.
    """

    __tablename__ = "hpc_jobs"
    __table_args__ = (UniqueConstraint("cluster", "slurm_job_id",
                                       name="uq_hpc_jobs_cluster_slurm_job_id"),
                      # the jobs list's order (a user's, newest first)
                      Index("ix_hpc_jobs_user_id_submitted_at", "user_id", "submitted_at", "id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    cluster: Mapped[str] = mapped_column(String(64))
    slurm_job_id: Mapped[int] = mapped_column(Integer)
    machine_id: Mapped[str | None] = mapped_column(
        ForeignKey("machines.id", ondelete="SET NULL"), nullable=True, index=True)
    experiment_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    name: Mapped[str] = mapped_column(String(200))
    template: Mapped[str] = mapped_column(String(64), default="")
    partition: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(32), default="PENDING")
    reason: Mapped[str] = mapped_column(Text, default="")
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    work_dir: Mapped[str] = mapped_column(Text)
    output_path: Mapped[str] = mapped_column(Text)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship()
