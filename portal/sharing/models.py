"""Shared desktops: a machine's members and their roles, share links, and the desktop
connections the proxy holds open (one row each, so the web process and every proxy process
see the same list)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from daaas.portal.auth.models import User
from daaas.portal.db import Base, UTCDateTime, utcnow


class Role(Enum):
    """What a desktop connection may do.

    ``owner``: the machine's owner (or an administrator): everything. ``user``: full control of
    the desktop, but cannot delete, extend or share the machine. ``viewer``: sees the desktop;
    the proxy drops every input message (:mod:`daaas.portal.sharing.rfbfilter`).
    """

    OWNER = "owner"
    USER = "user"
    VIEWER = "viewer"


#: The roles a member can be given (the owner is the machine's ``user_id``).
MEMBER_ROLES = (Role.USER, Role.VIEWER)


class LinkKind(Enum):
    """``invite``: one-time, expiring, makes the first account that opens it a member.
    ``view``: view-only, works only while the owner is connected, makes nobody a member.
    ``support``: not a link but an administrator's request for access, waiting for the owner
    (``used_by_id`` is the administrator; ``used_at`` the acceptance, ``revoked_at`` a refusal).
    """

    INVITE = "invite"
    VIEW = "view"
    SUPPORT = "support"


class MachineMember(Base):
    """Someone other than the owner who may open a machine's desktop, with a role."""

    __tablename__ = "machine_members"
    __table_args__ = (UniqueConstraint("machine_id", "user_id"),
                      Index("ix_machine_members_user_id", "user_id"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    machine_id: Mapped[str] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(10))
    invited_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    user: Mapped[User] = relationship()


class ShareLink(Base):
    """A share link of a machine; only the SHA-256 of its secret is stored."""

    __tablename__ = "share_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    machine_id: Mapped[str] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"),
                                            index=True)
    kind: Mapped[str] = mapped_column(String(10))
    role: Mapped[str] = mapped_column(String(10))
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    used_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DesktopConnection(Base):
    """One open (or recently closed) desktop connection through the proxy.

    The proxy process that relays it writes ``opened_at``, ``seen_at`` and ``closed_at`` and
    reads ``role`` and ``ended`` about twice a second; the web process changes ``role`` (a role
    change, the owner away) or sets ``ended`` (a revocation), and the proxy applies it.
    ``granted_role`` is what the token gave, restored when the owner comes back.
    """

    __tablename__ = "desktop_connections"
    __table_args__ = (Index("ix_desktop_connections_machine_closed", "machine_id", "closed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    machine_id: Mapped[str] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    link_id: Mapped[int | None] = mapped_column(
        ForeignKey("share_links.id", ondelete="SET NULL"), nullable=True)
    granted_role: Mapped[str] = mapped_column(String(10))
    role: Mapped[str] = mapped_column(String(10))
    ended: Mapped[str] = mapped_column(String(200), default="")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    user: Mapped[User] = relationship()


class OwnerAway(Enum):
    """What happens to the others on a shared desktop when its owner's last connection ends.

    View-only links end in every case: they live only while the owner is connected.
    """

    STAY = "stay"
    VIEW_ONLY = "view_only"
    DISCONNECT = "disconnect"


class SharePolicy(Base):
    """A shared machine's owner-away policy (written with the site's default at the first
    share; the owner may change it in the share dialog)."""

    __tablename__ = "share_policies"

    machine_id: Mapped[str] = mapped_column(ForeignKey("machines.id", ondelete="CASCADE"),
                                            primary_key=True)
    owner_away: Mapped[str] = mapped_column(String(12))
