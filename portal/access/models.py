"""The record of RDP sign-in tokens issued (table ``rdp_sign_ins``, migration 0017).

Never the token: its nonce, for whom, for which machine and until when. The VM enforces the
single use (it records the nonce when it accepts the token); this row is the portal's record.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from daaas.portal.db import Base, UTCDateTime


class RdpSignIn(Base):
    """One RDP sign-in token issued: nonce, machine, user, issued and expiry times."""

    __tablename__ = "rdp_sign_ins"

    nonce: Mapped[str] = mapped_column(String(32), primary_key=True)
    machine_id: Mapped[str] = mapped_column(
        ForeignKey("machines.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
