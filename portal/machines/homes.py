"""Nothing lost: the home folder of a local machine deleted by the lifetime policy is kept
for ``home_grace_days``, can be restored by an administrator into its owner's storage, and is
purged by the worker when the grace period ends.

The decision is recorded with the expiry itself (:func:`plan_keep`, in the transaction that
moves the machine to deleting and queues the owner's e-mail, which names the folder), so a
worker killed before the provider's deletion keeps it all the same. The provider moves the
home aside while deleting (:meth:`~daaas.portal.providers.Provider.delete_keeping_home`);
:func:`mark_kept` records where. A restore moves the folder into the owner's storage as
``~/storage/restored-<machine name>-<date>`` (:func:`restored_name`): the one place every
later machine, My Data and WebDAV reach.
"""

from __future__ import annotations

import os
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import ForeignKey, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, joinedload, mapped_column, relationship

from daaas.portal.audit.service import record
from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.db import Base, UTCDateTime
from daaas.portal.errors import Conflict, NotFound
from daaas.portal.machines.models import Machine, MachineEvent
from daaas.portal.storage.service import storage_area

PLANNED, KEPT, RESTORED, PURGED = "planned", "kept", "restored", "purged"
#: Where kept homes wait, under var_dir (mode 0700, the portal's).
KEPT_DIR = "kept-homes"


class KeptHome(Base):
    """The home folder of a machine deleted by policy, kept for a grace period."""

    __tablename__ = "kept_homes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    machine_id: Mapped[str] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"),
                                            unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    status: Mapped[str] = mapped_column(String(20), default=PLANNED, index=True)
    #: The folder on the portal's host while kept (never shown to users).
    path: Mapped[str] = mapped_column(Text, default="")
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    purge_after: Mapped[datetime] = mapped_column(UTCDateTime)
    #: Where a restore put it, as the desktop shows it (``~/storage/restored-…``).
    restored_to: Mapped[str] = mapped_column(String(300), default="")
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    done_by: Mapped[str] = mapped_column(String(200), default="")

    machine: Mapped[Machine] = relationship()
    user: Mapped[User] = relationship()


def kept_root(settings: Settings) -> Path:
    """Return the folder kept homes wait in. Raises nothing."""
    return settings.var_path / KEPT_DIR


def restored_name(machine: Machine, decided_at: datetime) -> str:
    """Return the folder name a restore gives the home in its owner's storage:
    ``restored-<machine name as a file name>-<YYYY-MM-DD>``. Raises nothing."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", machine.name).strip("-.")[:60] or machine.id
    return f"restored-{slug}-{decided_at:%Y-%m-%d}"


def plan_keep(db: Session, settings: Settings, machine: Machine, now: datetime,
              keeps_homes: bool) -> KeptHome | None:
    """Record that ``machine``'s home is to be kept (a policy deletion on a provider that
    ``keeps_homes``, ``home_grace_days`` above 0); None otherwise. Recorded before: the same
    row. Raises nothing beyond database errors."""
    if settings.home_grace_days <= 0 or not keeps_homes:
        return None
    found = db.scalar(select(KeptHome).where(KeptHome.machine_id == machine.id))
    if found is not None:
        return found
    row = KeptHome(machine_id=machine.id, user_id=machine.user_id, status=PLANNED,
                   decided_at=now, purge_after=now + timedelta(days=settings.home_grace_days),
                   restored_to="", done_by="", path="")
    db.add(row)
    return row


def planned_for(db: Session, machine_id: str) -> KeptHome | None:
    """Return the machine's kept home still waiting for its deletion, or None. Raises
    nothing beyond database errors."""
    return db.scalar(select(KeptHome).where(KeptHome.machine_id == machine_id,
                                            KeptHome.status == PLANNED))


def mark_kept(db: Session, machine_id: str, path: Path | None) -> None:
    """Record where the provider kept the machine's home (None: it had none to keep: the
    row is marked purged). Raises nothing beyond database errors."""
    row = planned_for(db, machine_id)
    if row is None:
        return
    if path is None:
        row.status, row.path = PURGED, ""
        return
    row.status, row.path = KEPT, str(path)


def due_for_purge(db: Session, now: datetime) -> list[int]:
    """Return the ids of kept homes whose grace period has ended. Raises nothing beyond
    database errors."""
    return list(db.scalars(select(KeptHome.id).where(KeptHome.status == KEPT,
                                                     KeptHome.purge_after <= now)))


def purge(db: Session, home_id: int, now: datetime) -> bool:
    """Remove one kept home whose grace period ended (locked, read again); True if removed.
    Raises nothing beyond database errors (a folder already gone is fine)."""
    row = db.scalar(select(KeptHome).where(KeptHome.id == home_id, KeptHome.status == KEPT,
                                           KeptHome.purge_after <= now).with_for_update())
    if row is None:
        return False
    if row.path:
        shutil.rmtree(row.path, ignore_errors=True)
    row.status, row.done_at, row.done_by = PURGED, now, "grace period ended"
    return True


def list_kept(db: Session) -> list[KeptHome]:
    """Return the homes kept now, the soonest purged first, machines and owners loaded.
    Raises nothing beyond database errors."""
    return list(db.scalars(select(KeptHome).where(KeptHome.status.in_([PLANNED, KEPT]))
                           .options(joinedload(KeptHome.machine), joinedload(KeptHome.user))
                           .order_by(KeptHome.purge_after, KeptHome.id)))


def find_kept(db: Session, machine: str) -> KeptHome:
    """Return the kept home of the machine with id ``machine`` (or of the one machine of
    that name). Raises NotFound for none, Conflict for a name several machines have."""
    rows = list(db.scalars(select(KeptHome).join(KeptHome.machine).where(
        (Machine.id == machine) | (Machine.name == machine))))
    if not rows:
        raise NotFound(f"No home folder is kept for a machine '{machine}'.")
    if len(rows) > 1:
        raise Conflict(f"Several machines are called '{machine}': give the machine's id.")
    return rows[0]


def restore_home(db: Session, settings: Settings, machine: str, actor: str,
                 now: datetime) -> KeptHome:
    """Restore the kept home of ``machine`` (id or unique name) into its owner's storage as
    ``actor`` (an administrator: the caller checked), with an event and an audit record;
    return the row (``restored_to`` says where, as the desktop shows it).

    Raises NotFound, Conflict (restored or purged already, its machine not deleted yet, or a
    storage the portal's host does not reach), OSError when it cannot be moved.
    """
    home = find_kept(db, machine)
    db.refresh(home, with_for_update=True)
    area = storage_area(settings, home.user)
    if not area.on_portal:
        raise Conflict("The owner's storage is not reachable from the portal's host, so the "
                       "home folder cannot be put there; copy it by hand.",
                       f"kept home {home.path}: storage not on the portal")
    restore(db, actor, area.path, home, now)
    record(db, "home.restore", actor=actor, target=home.machine_id,
           detail=f"to {home.restored_to} of {home.user.username}", admin=True)
    return home


def restore(db: Session, actor: str, storage: Path, home: KeptHome, now: datetime) -> str:
    """Move the kept ``home`` (locked by the caller's transaction) into the owner's storage
    folder ``storage`` as :func:`restored_name` (``-2``, ``-3`` … when taken), owned by the
    owner; record it and an event; return where it is as the desktop shows it
    (``~/storage/restored-…``).

    Raises Conflict when it is not kept (restored or purged already, or its machine not
    deleted yet), OSError when it cannot be moved.
    """
    if home.status != KEPT or not home.path:
        raise Conflict(f"The home folder of '{home.machine.name}' is {home.status}"
                       + (f" ({home.restored_to})" if home.restored_to else "")
                       + "; there is nothing to restore.")
    name = restored_name(home.machine, home.decided_at)
    target = storage / name
    suffix = 2
    while target.exists():
        target, suffix = storage / f"{name}-{suffix}", suffix + 1
    shutil.move(home.path, target)
    if os.geteuid() == 0:
        _chown_tree(target, home.user.uid, home.user.gid)
    home.status, home.done_at, home.done_by = RESTORED, now, actor
    home.restored_to = f"~/storage/{target.name}"
    home.path = ""
    db.add(MachineEvent(machine_id=home.machine_id, from_state=home.machine.state,
                        to_state=home.machine.state, at=now,
                        message=f"home folder restored to {home.restored_to} by {actor}"))
    return home.restored_to


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid, follow_symlinks=False)
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            os.chown(Path(folder) / name, uid, gid, follow_symlinks=False)
