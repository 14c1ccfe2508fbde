"""Jobs of the portal's users: where they came from, their last observed state, and when the
worker last listed each user's jobs (:mod:`daaas.portal.hpc.observer`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from daaas.portal.auth.models import User
from daaas.portal.db import Base, UTCDateTime, utcnow


class HpcJob(Base):
    """One batch job of a user as last observed; Slurm stays the truth about its state.

    ``origin`` is ``portal`` for a job submitted through the portal (``machine_id`` and
    ``experiment_id`` say which session and experiment it came from) and ``cluster`` for one the
    worker found in Slurm's listing that was submitted elsewhere (sbatch on a machine).
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
    origin: Mapped[str] = mapped_column(String(16), default="portal", server_default="portal")
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


class HpcObservation(Base):
    """When the worker last listed one user's jobs on a cluster, and what went wrong if the
    last try failed: the age the jobs pages show ("as of 12 s ago")."""

    __tablename__ = "hpc_observations"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    cluster: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: the last listing Slurm answered (None: none yet)
    observed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    #: the last try, answered or not
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: why the last try failed, as the user may read it ("" when it did not)
    problem: Mapped[str] = mapped_column(Text, default="")
