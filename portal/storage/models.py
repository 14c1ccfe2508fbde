"""App passwords: what a WebDAV client on the user's own computer signs in with."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from daaas.portal.db import Base, UTCDateTime, utcnow


class AppPassword(Base):
    """A per-user password for WebDAV, never the sign-in password.

    ``prefix`` (the first characters of the secret) finds the row without trying every hash;
    only a salted scrypt hash of the secret is stored.
    """

    __tablename__ = "app_passwords"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
