"""The SSH public keys a user keeps on their profile (table ``ssh_keys``, migration 0017)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from daaas.portal.db import Base, UTCDateTime, utcnow


class SshKey(Base):
    """One OpenSSH public key of a user, stored as ``<type> <base64>`` (the comment apart).

    A key is unique per user by its SHA-256 fingerprint (the same key twice is refused).
    """

    __tablename__ = "ssh_keys"
    __table_args__ = (UniqueConstraint("user_id", "fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_type: Mapped[str] = mapped_column(String(64))
    bits: Mapped[int] = mapped_column(Integer)
    public_key: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def authorized_keys_line(self) -> str:
        """Return the key as one authorized_keys line, its name as the comment."""
        comment = "".join(c if c.isprintable() else " " for c in self.name).strip()
        return f"{self.public_key} {comment}".rstrip()
