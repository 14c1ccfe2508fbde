"""Who may open a machine's desktop, and as what: the one check the desktop page, its tokens
and its status share (:func:`machine_access`). Kept apart from :mod:`.service` so that the
desktop-access service can import it."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from daaas.portal.auth.models import User
from daaas.portal.errors import NotFound
from daaas.portal.machines.models import Machine
from daaas.portal.sharing.models import MachineMember, Role

NO_SUCH_MACHINE = ("There is no such machine among yours. It may have been deleted; see My "
                   "machines on the Analysis page.")


@dataclass(frozen=True)
class Access:
    """A machine and the role a user has on it."""

    machine: Machine
    role: Role

    @property
    def is_owner(self) -> bool:
        """True for the owner or an administrator. Raises nothing."""
        return self.role is Role.OWNER


def role_of(db: Session, user: User, machine: Machine, *, emergency: bool = True) -> Role | None:
    """Return ``user``'s role on ``machine`` (owner for the owner, and for administrators
    unless ``emergency`` is False: then they need to be members too), or None.

    Raises SQLAlchemy errors only.
    """
    if machine.user_id == user.id or (user.is_admin and emergency):
        return Role.OWNER
    role = db.scalar(select(MachineMember.role).where(MachineMember.machine_id == machine.id,
                                                      MachineMember.user_id == user.id))
    return Role(role) if role else None


def machine_access(db: Session, user: User, machine_id: str, *,
                   emergency: bool = True) -> Access:
    """Return the machine and ``user``'s role on it; ``emergency`` False: an administrator needs
    to be a member (the setting ``support_emergency_access``). Raises NotFound for a non-member
    (never revealing that the machine exists)."""
    machine = db.scalar(select(Machine).where(Machine.id == machine_id))
    role = None if machine is None else role_of(db, user, machine, emergency=emergency)
    if machine is None or role is None:
        raise NotFound(NO_SUCH_MACHINE)
    return Access(machine, role)
