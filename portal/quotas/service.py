"""Quotas: what applies to a user, what they use, admission at launch and start, the
administrators' edits.

The settings' ``quotas`` give each user's and group's quota; a row of ``quotas`` (set on the
Quotas page or the API) replaces the setting's entry of the same user or group. How a user's
own quota and their groups' combine is :mod:`daaas.portal.quotas.rules`.

Admission (:func:`admit`) runs in the launch's (or start's) transaction after the user's
launch lock (:func:`daaas.portal.machines.service.lock_launches`): it takes a lock per group
of the user that has a quota, in name order (PostgreSQL: ``pg_advisory_xact_lock``, let go at
commit or rollback; SQLite: the user lock is already the database's one write lock), then
counts. Two members of one group launching at once are therefore decided one after the other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from daaas.portal.auth.models import User
from daaas.portal.config import Settings, parse_flavor_sizes, parse_quotas
from daaas.portal.errors import Conflict
from daaas.portal.machines.models import Machine
from daaas.portal.machines.states import State
from daaas.portal.quotas import rules
from daaas.portal.quotas.models import QuotaRow
from daaas.portal.quotas.rules import Bound, Limits, Usage

#: States whose machines count against the machine quota (all but gone, going and failed).
NOT_COUNTED = (State.DELETED.value, State.DELETING.value, State.ERROR.value)
#: States whose machines hold no cores, memory or GPU (a stopped machine keeps only its disk).
IDLE = (State.STOPPED.value,)


class QuotaExceeded(Conflict):
    """A launch or start would take a user or group over a quota; the message names it."""

    code = "quota_exceeded"


@dataclass(frozen=True)
class Quota:
    """One user's or group's quota and where it comes from ("settings" or "admin")."""

    scope: str
    name: str
    limits: Limits
    source: str
    updated_by: str = ""
    updated_at: datetime | None = None


def all_quotas(db: Session | None, settings: Settings) -> list[Quota]:
    """Return every quota, the settings' with the administrators' rows over them (none
    without ``db``), groups first, by name. Raises nothing beyond database errors."""
    found = {key: Quota(key[0], key[1], limits, "settings")
             for key, limits in parse_quotas(settings.quotas).items()}
    for row in db.scalars(select(QuotaRow)) if db is not None else ():
        found[(row.scope, row.name)] = Quota(row.scope, row.name, row_limits(row), "admin",
                                             row.updated_by, row.updated_at)
    return sorted(found.values(), key=lambda q: (q.scope != "group", q.name))


def row_limits(row: QuotaRow) -> dict[str, int]:
    """Return a stored quota's limits as keys (``gpu:<model>`` for its GPUs)."""
    limits = {key: value for key in ("machines", "vcpus", "memory_gib", "storage_gib")
              if (value := getattr(row, key)) is not None}
    return limits | {f"gpu:{model}": count for model, count in (row.gpus or {}).items()}


def quotas_of(db: Session | None, settings: Settings,
              user: User) -> tuple[Limits | None, dict[str, Limits]]:
    """Return the user's own quota (None when there is none) and their groups' quotas by group
    name (only groups that have one). Raises nothing beyond database errors."""
    groups = set(user.groups or [])
    own: Limits | None = None
    found: dict[str, Limits] = {}
    for quota in all_quotas(db, settings):
        if quota.scope == "user" and quota.name == user.username:
            own = quota.limits
        elif quota.scope == "group" and quota.name in groups:
            found[quota.name] = quota.limits
    return own, found


def demand(settings: Settings, flavor: str, *, new_machine: bool) -> dict[str, float]:
    """Return what one machine of ``flavor`` takes: a machine (when ``new_machine``), its
    cores, memory and GPUs by model, as ``flavor_sizes`` describes it (an undescribed flavor
    takes no cores, memory or GPU). Raises nothing."""
    need: dict[str, float] = {"machines": 1.0} if new_machine else {}
    size = parse_flavor_sizes(settings.flavor_sizes).get(flavor)
    if size is not None:
        need |= {"vcpus": size.cores, "memory_gib": size.memory_gib}
        if size.gpus:
            need[f"gpu:{size.gpu_model}"] = size.gpus
    return need


@dataclass
class Ledger:
    """The live machines (not deleted, deleting or failed): owner, owner's groups, flavor,
    state; read once per admission."""

    settings: Settings
    #: (owner, owner's groups, flavor, state, how many such machines)
    rows: list[tuple[int, list[str], str, str, int]] = field(default_factory=list)

    def usage(self, owners: Iterable[int] | None = None,
              groups: Sequence[str] = ()) -> dict[str, float]:
        """Return what the machines of ``owners`` (user ids), or of the members of any of
        ``groups``, use: machines, and cores, memory and GPUs of those not stopped."""
        ids, members = set(owners or ()), set(groups)
        used: dict[str, float] = {}
        needs: dict[str, dict[str, float]] = {}  # flavor_sizes parsed once per flavor
        for owner, their_groups, flavor, state, count in self.rows:
            if owner not in ids and not members & set(their_groups or []):
                continue
            if flavor not in needs:
                needs[flavor] = demand(self.settings, flavor, new_machine=True)
            for key, value in needs[flavor].items():
                if key == "machines" or state not in IDLE:
                    used[key] = used.get(key, 0) + value * count
        return used


def ledger(db: Session, settings: Settings) -> Ledger:
    """Return the :class:`Ledger` of every live machine, counted per owner, flavor and state
    in the database (a row per kind, not per machine: 10,000 machines cost a launch ~0.3 s
    read one by one). Raises database errors only."""
    kinds = (select(Machine.user_id, Machine.flavor, Machine.state,
                    func.count().label("n"))
             .where(Machine.state.not_in(NOT_COUNTED))
             .group_by(Machine.user_id, Machine.flavor, Machine.state).subquery())
    rows = db.execute(select(kinds.c.user_id, User.groups, kinds.c.flavor, kinds.c.state,
                             kinds.c.n).join(User, User.id == kinds.c.user_id))
    return Ledger(settings, [(r[0], list(r[1] or []), r[2], r[3], int(r[4])) for r in rows])


def user_bounds(db: Session, settings: Settings, user: User) -> list[Bound]:
    """Return every compute limit that applies to the user now, with what is in use
    (:func:`rules.bounds`). Raises database errors only."""
    own, groups = quotas_of(db, settings, user)
    book = ledger(db, settings)
    return rules.bounds(own, groups, book.usage([user.id]),
                        lambda names: book.usage(groups=names),
                        settings.quota_policy, {"machines": settings.max_machines_per_user})


def machine_limit(db: Session, settings: Settings, user: User) -> int:
    """Return how many machines the user may have: their own quota's, else the site's
    ``max_machines_per_user`` (group pools are checked by :func:`admit`). Raises database
    errors only."""
    own, _ = quotas_of(db, settings, user)
    return (own or {}).get("machines", settings.max_machines_per_user)


def lock_groups(db: Session, groups: Iterable[str]) -> None:
    """Take a transaction lock per group in name order (PostgreSQL advisory locks, let go at
    commit or rollback); nothing on SQLite, whose launch lock is the database's one write lock.
    Call it after the user's launch lock. Raises database errors only."""
    if db.get_bind().dialect.name == "sqlite":
        return
    for group in sorted(set(groups)):
        digest = hashlib.sha256(f"daaas-quota-group:{group}".encode()).digest()
        db.execute(text("SELECT pg_advisory_xact_lock(:k)"),
                   {"k": int.from_bytes(digest[:8], "big", signed=True)})


def admit(db: Session, settings: Settings, user: User, flavor: str, *,
          starting: bool = False) -> None:
    """Admit one more machine of ``flavor`` for ``user`` (``starting``: a stopped machine of
    theirs starting again, which needs its cores, memory and GPU but is already counted as a
    machine), or refuse it. Call it under the user's launch lock; it takes the locks of the
    user's groups that have quotas. Raises QuotaExceeded (409) naming the quota, its holder,
    the limit and what is in use."""
    _, groups = quotas_of(db, settings, user)
    lock_groups(db, groups)
    need = demand(settings, flavor, new_machine=not starting)
    for bound in user_bounds(db, settings, user):
        if bound.refuses(need.get(bound.key, 0)):
            raise QuotaExceeded(bound.refusal(need[bound.key], "Start" if starting else
                                              "Launch"))


@dataclass(frozen=True)
class PanelLine:
    """One line of the Analysis page's quota panel: "GPU (NVIDIA A100)", 1 of 2 used."""

    label: str
    used: str
    limit: str
    holder: str
    full: bool


_LABELS = {"machines": "Machines", "vcpus": "vCPUs", "memory_gib": "Memory"}


def panel(db: Session, settings: Settings, user: User) -> list[PanelLine]:
    """Return the quota panel of the user: per limit the tightest that applies, machines
    first, GPUs last. Raises database errors only."""
    order = {"machines": 0, "vcpus": 1, "memory_gib": 2}
    lines = sorted(rules.tightest(user_bounds(db, settings, user)),
                   key=lambda b: (order.get(b.key, 3), b.key))
    return [PanelLine(_LABELS.get(b.key) or f"GPU ({b.key[4:]})",
                      rules.amount(b.key, b.used).removesuffix(" GiB"),
                      rules.amount(b.key, b.limit), b.holder, b.room <= 0) for b in lines]


def usage_of(db: Session, settings: Settings, user: User) -> Usage:
    """Return what the user's own machines use (machines, vcpus, memory_gib, gpu:<model>)."""
    return ledger(db, settings).usage([user.id])
