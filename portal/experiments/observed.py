"""What the portal last observed of ICAT (issue 19), kept in its database for every process.

Written at a user's first sign-in, a first launch with an experiment and ``daaas tokens create``
(:func:`daaas.portal.experiments.service.first_look`), and otherwise only by the worker
(:meth:`daaas.portal.experiments.icat.IcatExperiments.refresh_due`: right after a sign-in, for
a user never observed who is active or holds a token, and every ``icat_refresh_seconds`` for
active users); pages and API GETs only read, and never ask ICAT. The store works on an
engine of its own in short transactions, so no transaction is open while ICAT is asked.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import JSON, Integer, String, exists, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from daaas.portal.auth.models import ApiToken, BrowserSession, User
from daaas.portal.db import Base, UTCDateTime, unit_of_work, utcnow
from daaas.portal.experiments.backends import InvestigationInfo, Member

#: A user counts as active (their list is kept fresh) while they used the portal this recently.
ACTIVE = timedelta(hours=1)


class ObservedExperiments(Base):
    """The ids of the investigations one user may use, as ICAT last answered."""

    __tablename__ = "observed_experiments"

    username: Mapped[str] = mapped_column(String(255), primary_key=True)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    investigation_ids: Mapped[list[int]] = mapped_column(JSON, default=list)


class ObservedInvestigation(Base):
    """One investigation as ICAT last answered (:func:`info_json`)."""

    __tablename__ = "observed_investigations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    observed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class IcatStore:
    """Reads and records observations in short transactions of their own."""

    def __init__(self, session_factory: sessionmaker[Session]) -> None:
        self.session_factory = session_factory

    def mine(self, username: str) -> list[InvestigationInfo] | None:
        """Return the user's investigations as last observed (None: never observed; two
        queries). Raises nothing beyond database errors."""
        with self.session_factory() as db:
            row = db.get(ObservedExperiments, username)
            if row is None:
                return None
            found = {r.id: r.data for r in db.scalars(select(ObservedInvestigation).where(
                ObservedInvestigation.id.in_(row.investigation_ids)))}
        return [info_from_json(found[i]) for i in row.investigation_ids if i in found]

    def one(self, investigation_id: int) -> InvestigationInfo | None:
        """Return one investigation as last observed, or None. Raises nothing beyond database
        errors."""
        with self.session_factory() as db:
            row = db.get(ObservedInvestigation, investigation_id)
            return info_from_json(row.data) if row is not None else None

    def record(self, username: str, infos: list[InvestigationInfo],
               now: datetime | None = None) -> None:
        """Record ``infos`` and that they are the user's, in this order. A concurrent first
        record of the same rows by another worker is left to win. Raises nothing beyond
        database errors."""
        moment = now or utcnow()
        try:
            with unit_of_work(self.session_factory) as db:
                for info in infos:
                    db.merge(ObservedInvestigation(id=info.id, observed_at=moment,
                                                   data=info_json(info)))
                db.merge(ObservedExperiments(username=username, observed_at=moment,
                                             investigation_ids=[i.id for i in infos]))
        except IntegrityError:
            pass  # another worker recorded the same first observation a moment ago

    def due(self, now: datetime, every: timedelta, limit: int) -> list[str]:
        """Return up to ``limit`` user names to ask ICAT about (again), least recently observed
        first (never observed first of all): users signed in since their last observation,
        users never observed who were active in the last hour or hold a live API token (a
        view that answered "not read yet" could not record the token's use), and active users
        observed longer than ``every`` ago. Raises nothing beyond database errors."""
        seen = select(ObservedExperiments.observed_at).where(  # the outer query's user, also
            ObservedExperiments.username == User.username).correlate(User).scalar_subquery()
        # inside the EXISTS below (left to itself, it would read the first user's row there)
        signed_in = exists().where(BrowserSession.user_id == User.id,
                                   BrowserSession.ended_at.is_(None),
                                   BrowserSession.created_at > seen)
        active = or_(exists().where(BrowserSession.user_id == User.id,
                                    BrowserSession.last_seen_at > now - ACTIVE),
                     exists().where(ApiToken.user_id == User.id,
                                    ApiToken.last_used_at > now - ACTIVE))
        holds_a_token = exists().where(ApiToken.user_id == User.id, ApiToken.expires_at > now)
        with self.session_factory() as db:
            return list(db.scalars(select(User.username).where(
                User.is_active.is_(True),
                or_(signed_in, seen.is_(None) & (active | holds_a_token),
                    (seen < now - every) & active))
                .order_by(seen.nulls_first(), User.id).limit(limit)))


def info_json(info: InvestigationInfo) -> dict[str, Any]:
    """Return the investigation as JSON-ready data (read back by :func:`info_from_json`)."""
    def when(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {"id": info.id, "facility": info.facility, "name": info.name,
            "visit_id": info.visit_id, "title": info.title,
            "instruments": list(info.instruments), "start_date": when(info.start_date),
            "end_date": when(info.end_date),
            "members": [[m.name, m.full_name, m.role] for m in info.members],
            "data_locations": list(info.data_locations)}


def info_from_json(data: dict[str, Any]) -> InvestigationInfo:
    """Return the investigation :func:`info_json` wrote. Raises KeyError for other data."""
    def when(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    return InvestigationInfo(
        id=int(data["id"]), facility=data["facility"], name=data["name"],
        visit_id=data["visit_id"], title=data["title"], instruments=tuple(data["instruments"]),
        start_date=when(data["start_date"]), end_date=when(data["end_date"]),
        members=tuple(Member(*member) for member in data["members"]),
        data_locations=tuple(data["data_locations"]))
