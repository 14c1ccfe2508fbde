"""The production experiment backend: a real ICAT server, read over its REST interface.

The portal logs in with one reader account (see :mod:`daaas.portal.experiments.icat_credentials`)
and asks, per portal user, for the investigations they are on (ICAT InvestigationUser) or
whose instrument they are a scientist of (ICAT InstrumentScientist), with their instruments,
members, datasets (for their locations) and facility. The worker asks and records the answers
in the portal's database (:mod:`daaas.portal.experiments.observed`; :meth:`refresh_due`: right
after a sign-in, for an active user never recorded, and every ``icat_refresh_seconds`` for
active users); views read the record, and ask ICAT themselves (keeping the answer in their
process for ``icat_cache_seconds``, writing nothing) only while nothing is recorded.

Entity shapes follow ICAT's REST search answer (icat.server ``ICATRest.search`` and its
``jsonise``; see :mod:`daaas.portal.experiments.icat_client` for the version followed): a list of
``{"Investigation": {...}}``, related entities inside it as plain objects, not wrapped by type
(``"investigationInstruments": [{"id": 7, "instrument": {"name": "I03", ...}}]``), dates as
``yyyy-MM-dd'T'HH:mm:ss.SSSXXX`` (``2026-11-01T09:00:00.000Z``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from daaas.portal.config import ConfigError, Settings
from daaas.portal.db import make_engine, make_session_factory, utcnow
from daaas.portal.errors import NotFound, PortalError
from daaas.portal.experiments.backends import (
    ExperimentBackend,
    InvestigationInfo,
    Member,
    sort_current_first,
)
from daaas.portal.experiments.cache import ExpiringCache
from daaas.portal.experiments.errors import ExperimentsNotReadYet, ExperimentsUnavailable
from daaas.portal.experiments.icat_client import IcatClient
from daaas.portal.experiments.icat_credentials import read_credentials
from daaas.portal.experiments.observed import IcatStore

log = logging.getLogger(__name__)
#: At most this many users are asked about per worker cycle (the rest wait for the next).
REFRESH_BATCH = 20

INCLUDE = ("INCLUDE i.facility, i.investigationInstruments.instrument, "
           "i.investigationUsers.user, i.datasets")
AS_MEMBER = ("SELECT DISTINCT i FROM Investigation i JOIN i.investigationUsers AS iu "
             "JOIN iu.user AS u WHERE u.name = {name} " + INCLUDE)
AS_SCIENTIST = ("SELECT DISTINCT i FROM Investigation i JOIN i.investigationInstruments AS ii "
                "JOIN ii.instrument AS inst JOIN inst.instrumentScientists AS s "
                "JOIN s.user AS u WHERE u.name = {name} " + INCLUDE)
BY_ID = "SELECT i FROM Investigation i WHERE i.id = {id} " + INCLUDE


def quoted(text: str) -> str:
    """Return ``text`` as an ICAT query string literal (quotes doubled, as ICAT's lexer reads)."""
    return "'" + text.replace("'", "''") + "'"


class IcatExperiments(ExperimentBackend):
    """Investigations read from an ICAT server, recorded in ``store`` (when given) and kept in
    memory per user for ``cache_seconds``."""

    name = "icat"

    def __init__(self, client: IcatClient, cache_seconds: float = 60.0,
                 user_prefix: str = "", store: IcatStore | None = None,
                 refresh_seconds: float = 300.0) -> None:
        self.client, self.user_prefix, self.store = client, user_prefix, store
        self.refresh = timedelta(seconds=refresh_seconds)
        self._mine: ExpiringCache[str, list[InvestigationInfo]] = ExpiringCache(cache_seconds)
        self._one: ExpiringCache[int, InvestigationInfo] = ExpiringCache(cache_seconds)

    @classmethod
    def from_settings(cls, settings: Settings) -> IcatExperiments:
        """Return the backend for ``icat_url``; raises ConfigError for unusable settings or
        credentials file."""
        if not settings.icat_url:
            raise ConfigError("Configuration key 'icat_url' must be set when "
                              "experiments_backend is 'icat'.")
        client = IcatClient(settings.icat_url, read_credentials(settings.icat_credentials_file),
                            settings.icat_timeout_seconds, settings.icat_verify_tls)
        store = IcatStore(make_session_factory(make_engine(settings.effective_database_url)))
        return cls(client, settings.icat_cache_seconds, settings.icat_user_prefix, store,
                   settings.icat_refresh_seconds)

    def investigations_for(self, username: str) -> list[InvestigationInfo]:
        """Return the user's investigations (member or instrument scientist), current first,
        as last recorded (by the user's first sign-in or the worker); never asks ICAT when
        a store is kept. Raises ExperimentsNotReadYet when nothing is recorded yet (a token
        used before its user ever signed in: the worker looks within seconds), and, without a
        store, ExperimentsUnavailable."""
        cached = self._mine.get(username)
        if cached is None and self.store is not None:
            cached = self.store.mine(username)
            if cached is None:
                raise ExperimentsNotReadYet(username)
        if cached is None:
            return self._ask(username)
        mine = sort_current_first(cached)
        self._mine.put(username, mine)
        return mine

    def never_observed(self, username: str) -> bool:
        """Return True when the worker (or a sign-in) never recorded ``username``'s
        investigations. Raises nothing beyond database errors."""
        return self.store is not None and self.store.mine(username) is None

    def first_look(self, username: str) -> None:
        """Ask ICAT about ``username`` now and record the answer (at sign-in and when a
        token is made, never from a page view). Raises nothing: ICAT's failure is logged."""
        try:
            self.observe(username)
        except PortalError as exc:
            log.warning("ICAT not asked about %s at sign-in: %s", username, exc.log_message)

    def observe(self, username: str) -> list[InvestigationInfo]:
        """Ask ICAT for the user's investigations now, record and return them (the worker's
        look). Raises ExperimentsUnavailable."""
        mine = self._ask(username)
        if self.store is not None:
            self.store.record(username, mine)
        return mine

    def _ask(self, username: str) -> list[InvestigationInfo]:
        name = quoted(self.user_prefix + username)
        found: dict[int, InvestigationInfo] = {}
        for query in (AS_MEMBER, AS_SCIENTIST):
            for info in self._infos(query.format(name=name)):
                found[info.id] = info
                self._one.put(info.id, info)
        mine = sort_current_first(list(found.values()))
        self._mine.put(username, mine)
        return mine

    def get(self, investigation_id: int) -> InvestigationInfo:
        """Return the investigation as last recorded; never asks ICAT when a store is kept.
        Raises NotFound for one not recorded (no user of the portal is on it, as ICAT last
        answered), and, without a store, ExperimentsUnavailable."""
        cached = self._one.get(investigation_id)
        if cached is None and self.store is not None:
            cached = self.store.one(investigation_id)
            if cached is None:
                raise NotFound("There is no such experiment. Pick one of yours from the list.",
                               f"investigation {investigation_id} is not recorded: no user of "
                               "the portal is on it, as ICAT last answered")
        if cached is not None:
            self._one.put(investigation_id, cached)
            return cached
        found = self._infos(BY_ID.format(id=int(investigation_id)))
        if not found:
            raise NotFound("There is no such experiment. Pick one of yours from the list.")
        self._one.put(investigation_id, found[0])
        return found[0]

    def refresh_due(self) -> int:
        """Ask ICAT again about the users due (:meth:`IcatStore.due`, at most
        :data:`REFRESH_BATCH`); return how many were asked. A user ICAT does not answer for
        keeps the last observation (logged). Raises nothing beyond database errors."""
        if self.store is None:
            return 0
        names = self.store.due(utcnow(), self.refresh, REFRESH_BATCH)
        for username in names:
            try:
                self.observe(username)
            except PortalError as exc:
                log.warning("ICAT not asked about %s: %s", username, exc.log_message)
        return len(names)

    def _infos(self, query: str) -> list[InvestigationInfo]:
        try:
            return [self._info(item["Investigation"]) for item in self.client.search(query)]
        except (KeyError, TypeError, ValueError) as exc:
            raise ExperimentsUnavailable(f"ICAT at {self.client.base} answered an investigation "
                                         f"search in an unexpected shape: {exc!r}") from None

    def _info(self, row: dict[str, Any]) -> InvestigationInfo:
        users = row.get("investigationUsers", [])
        return InvestigationInfo(
            id=int(row["id"]), facility=str(row.get("facility", {}).get("name", "")),
            name=str(row["name"]), visit_id=str(row["visitId"]),
            title=str(row.get("title", "")),
            instruments=tuple(sorted(str(ii["instrument"]["name"])
                                     for ii in row.get("investigationInstruments", []))),
            start_date=parse_date(row.get("startDate")), end_date=parse_date(row.get("endDate")),
            members=tuple(Member(self._portal_name(str(u["user"]["name"])),
                                 str(u["user"].get("fullName", "")), str(u.get("role", "")))
                          for u in users),
            data_locations=tuple(str(d["location"]) for d in row.get("datasets", [])
                                 if d.get("location")))

    def _portal_name(self, icat_name: str) -> str:
        return icat_name.removeprefix(self.user_prefix) if self.user_prefix else icat_name


def parse_date(value: object) -> datetime | None:
    """Return ICAT's ``2026-11-01T09:00:00.000Z`` (or ``+01:00``) as an aware UTC datetime."""
    if value is None:
        return None
    moment = datetime.fromisoformat(str(value))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
