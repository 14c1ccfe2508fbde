"""Demo accounts for the embedded mode, created only on an empty database."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daaas.portal.auth.models import User
from daaas.portal.auth.service import create_user
from daaas.portal.config import Settings


@dataclass(frozen=True)
class DemoUser:
    """One demo account and what it may see."""

    username: str
    password: str
    display_name: str
    groups: tuple[str, ...]
    instruments: tuple[str, ...]
    is_admin: bool = False


DEMO_USERS = (
    DemoUser("scientist", "scientist-demo", "Dr Ada Crystal", ("diamond-users",),
             ("I03", "I04", "I12")),
    DemoUser("neutron", "neutron-demo", "Dr Ben Neutron", ("isis-users",), ("WISH", "MARI")),
    DemoUser("admin", "admin-demo-pass", "Facility Admin", ("staff",), (), is_admin=True),
)


def create_demo_users(db: Session, settings: Settings) -> list[DemoUser]:
    """Create the demo accounts if there are no users at all; return those created."""
    if db.scalar(select(func.count(User.id))):
        return []
    for demo in DEMO_USERS:
        create_user(db, settings, demo.username, demo.password, display_name=demo.display_name,
                    groups=list(demo.groups), instruments=list(demo.instruments),
                    is_admin=demo.is_admin)
    return list(DEMO_USERS)
