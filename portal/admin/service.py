"""Admin console rules: users (search, usage, disable/enable) and machines (filters, bulk
stop/delete with a reason the owner sees).

Pages (:mod:`.views`) and the API (:mod:`.api`) are thin layers over these functions, so both
give the same answers and the same refusals. Every function expects an administrator: the
views check it (``require_admin``) before calling.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session, joinedload

from daaas.portal.audit.service import record
from daaas.portal.auth.models import User
from daaas.portal.auth.service import get_user, set_active
from daaas.portal.config import FlavorSize, Settings
from daaas.portal.db import utcnow
from daaas.portal.errors import Conflict, InvalidInput, PortalError
from daaas.portal.machines.capacity import describe_flavors
from daaas.portal.machines.lifetime import idle_since
from daaas.portal.machines.models import AccessToken, Machine
from daaas.portal.machines.service import request_delete, request_stop
from daaas.portal.machines.states import State
from daaas.portal.providers import Provider
from daaas.portal.quotas import rules
from daaas.portal.quotas.service import all_quotas, ledger

#: States in which a machine holds cores and GPUs at the provider (a stopped one does not).
RUNNING = (State.PROVISIONING.value, State.CONTEXTUALISING.value, State.READY.value,
           State.STOPPING.value)
#: The longest reason an administrator may give (shown to the user).
MAX_REASON = 500
#: The most machines one bulk action may name.
MAX_BULK = 200
#: The most rows a list answers with.
MAX_ROWS = 500


@dataclass(frozen=True)
class Usage:
    """What a user holds now: machines not deleted (all but deleted, deleting and failed),
    and the cores and GPUs of those running (holding them at the provider)."""

    machines: int = 0
    running: int = 0
    vcpus: int = 0
    gpus: int = 0


@dataclass(frozen=True)
class QuotaLine:
    """One limit that applies to a user (the tightest per key, from the quotas service's
    rules): "vCPUs 12 of 32 (group 'diamond-users')"."""

    key: str
    used: str
    limit: str
    holder: str

    @property
    def text(self) -> str:
        """Return the line as people read it. Raises nothing."""
        label = {"machines": "Machines", "vcpus": "vCPUs", "memory_gib": "Memory"}.get(
            self.key) or f"GPU ({self.key[4:]})"
        return f"{label} {self.used} of {self.limit} ({self.holder})"


@dataclass(frozen=True)
class UserLine:
    """One user in the admin console, with what they hold now and their effective quota."""

    user: User
    usage: Usage
    quota: tuple[QuotaLine, ...] = ()


def effective_quotas(db: Session, settings: Settings,
                     users: Sequence[User]) -> dict[int, tuple[QuotaLine, ...]]:
    """Return each user's effective compute quota (per limit the tightest that applies, as
    the launch admission of :mod:`daaas.portal.quotas` weighs it), by user id: two queries
    for the whole list (the quotas and the live machines). Raises nothing beyond database
    errors."""
    quotas, book = all_quotas(db, settings), ledger(db, settings)
    site = {"machines": settings.max_machines_per_user}
    order = {"machines": 0, "vcpus": 1, "memory_gib": 2}
    found: dict[int, tuple[QuotaLine, ...]] = {}
    for user in users:
        groups = set(user.groups or [])
        own = next((q.limits for q in quotas
                    if q.scope == "user" and q.name == user.username), None)
        theirs = {q.name: q.limits for q in quotas if q.scope == "group" and q.name in groups}
        bounds = rules.tightest(rules.bounds(own, theirs, book.usage([user.id]),
                                             lambda names: book.usage(groups=names),
                                             settings.quota_policy, site))
        found[user.id] = tuple(
            QuotaLine(b.key, rules.amount(b.key, b.used), rules.amount(b.key, b.limit),
                      b.holder)
            for b in sorted(bounds, key=lambda b: (order.get(b.key, 3), b.key)))
    return found


def flavor_size(sizes: dict[str, FlavorSize], flavor: str) -> FlavorSize:
    """Return the size of ``flavor`` from the site's ``flavor_sizes`` (0 cores and no GPU
    when the site does not describe it). Raises nothing."""
    return sizes.get(flavor) or FlavorSize(name=flavor, cores=0, memory_gib=0)


def usage_of(db: Session, settings: Settings, user_ids: Iterable[int]) -> dict[int, Usage]:
    """Return each user's :class:`Usage` by user id (users holding nothing are absent): one
    query. Raises nothing beyond database errors."""
    ids = list(user_ids)
    if not ids:
        return {}
    sizes = describe_flavors(settings)
    rows = db.execute(select(Machine.user_id, Machine.state, Machine.flavor, func.count())
                      .where(Machine.user_id.in_(ids),
                             Machine.state.not_in((State.DELETED.value, State.DELETING.value,
                                                   State.ERROR.value)))
                      .group_by(Machine.user_id, Machine.state, Machine.flavor)).all()
    totals: dict[int, Usage] = {}
    for user_id, state, flavor, count in rows:
        was = totals.get(user_id, Usage())
        size = flavor_size(sizes, flavor)
        running = count if state in RUNNING else 0
        totals[user_id] = Usage(machines=was.machines + count, running=was.running + running,
                                vcpus=was.vcpus + running * size.cores,
                                gpus=was.gpus + running * size.gpus)
    return totals


def search_users(db: Session, settings: Settings, text: str = "", *,
                 limit: int = 100) -> list[UserLine]:
    """Return the users whose user name, display name, e-mail or group contains ``text``
    (case-insensitive; all users for ""), by user name, at most ``limit``, each with their
    usage. Raises InvalidInput for a limit outside 1..500."""
    if not 1 <= limit <= MAX_ROWS:
        raise InvalidInput(f"Ask for 1 to {MAX_ROWS} users at a time.")
    query = select(User).order_by(User.username)
    needle = text.strip().lower()
    if needle:
        like = f"%{needle.replace('%', '').replace('_', '')}%"
        query = query.where(or_(func.lower(User.username).like(like),
                                func.lower(User.display_name).like(like),
                                func.lower(User.email).like(like)))
    users = list(db.scalars(query))
    if needle:  # groups are a JSON list: matched here, the same on SQLite and PostgreSQL
        extra = [u for u in db.scalars(select(User).order_by(User.username))
                 if u not in users and any(needle in g.lower() for g in u.groups or [])]
        users = sorted(users + extra, key=lambda u: u.username)
    users = users[:limit]
    usage = usage_of(db, settings, [u.id for u in users])
    quota = effective_quotas(db, settings, users)
    return [UserLine(u, usage.get(u.id, Usage()), quota.get(u.id, ())) for u in users]


def user_machines(db: Session, user: User) -> list[Machine]:
    """Return the user's machines that are not deleted, newest first. Raises nothing beyond
    database errors."""
    return list(db.scalars(select(Machine).where(Machine.user_id == user.id,
                                                 Machine.state != State.DELETED.value)
                           .options(joinedload(Machine.user))
                           .order_by(Machine.created_at.desc())))


def clean_reason(raw: object, *, required: bool = True) -> str:
    """Return an administrator's reason with outer spaces removed. Raises InvalidInput when
    it is missing (and ``required``), longer than :data:`MAX_REASON` or holds control
    characters other than line breaks."""
    text = raw.strip() if isinstance(raw, str) else ""
    if required and not text:
        raise InvalidInput("Give a reason: the user sees it.")
    if len(text) > MAX_REASON:
        raise InvalidInput(f"A reason is at most {MAX_REASON} characters.")
    if any(ord(ch) < 32 and ch not in "\n\r" for ch in text):
        raise InvalidInput("A reason may not hold control characters.")
    return text


def disable_user(db: Session, admin: User, username: str, reason: str, *,
                 stop_machines: bool, provider: Provider) -> User:
    """Disable the account ``username``: its browser sessions end at once, sign-in and its API
    tokens and app passwords are refused while it is disabled (``is_active``), its unspent
    desktop tokens are spent so no new desktop connection opens, and with ``stop_machines``
    its ready machines are asked to stop (which ends open desktop connections) with the reason.
    Returns the user. Raises NotFound for an unknown user, Conflict for one's own account,
    InvalidInput for a bad reason."""
    text = clean_reason(reason)
    user = get_user(db, username)
    if user.id == admin.id:
        raise Conflict("You cannot disable your own account.")
    now = utcnow()
    set_active(db, user.username, False)
    user.disabled_at, user.disabled_reason = now, text
    db.execute(update(AccessToken).where(AccessToken.user_id == user.id,
                                         AccessToken.used_at.is_(None))
               .values(used_at=now).execution_options(synchronize_session=False))
    if stop_machines and provider.supports_stop:
        ready = db.scalars(select(Machine.id).where(Machine.user_id == user.id,
                                                    Machine.state == State.READY.value))
        for machine_id in list(ready):
            request_stop(db, admin, machine_id, provider,
                         reason=f"account disabled: {text}")
    record(db, "admin.user_disable", actor=admin.username, target=f"user {user.username}",
           detail=text, admin=True)
    return user


def enable_user(db: Session, admin: User, username: str) -> User:
    """Enable the account ``username`` again (its machines stay as they are). Returns the
    user; raises NotFound for an unknown user."""
    user = set_active(db, username, True)
    user.disabled_at, user.disabled_reason = None, ""
    record(db, "admin.user_enable", actor=admin.username, target=f"user {user.username}",
           admin=True)
    return user


@dataclass(frozen=True)
class MachineFilter:
    """Which machines to list: each criterion given narrows the list. ``older_than_hours``:
    launched at least that long ago; ``idle_hours``: ready with no desktop connection (the
    proxy's ``desktop_seen_at``, else since it became ready) for at least that long."""

    state: str = ""
    user: str = ""
    environment: str = ""
    flavor: str = ""
    older_than_hours: float | None = None
    idle_hours: float | None = None
    include_deleted: bool = False


def filter_machines(db: Session, wanted: MachineFilter, now: datetime, *,
                    limit: int = MAX_ROWS) -> tuple[list[Machine], int]:
    """Return the machines matching ``wanted``, newest first (at most ``limit``), and how
    many match in all. Raises InvalidInput for an unknown state or a negative age."""
    conditions = []
    if wanted.state:
        if wanted.state not in {s.value for s in State}:
            raise InvalidInput(f"'{wanted.state}' is not a machine state.")
        conditions.append(Machine.state == wanted.state)
    elif not wanted.include_deleted:
        conditions.append(Machine.state != State.DELETED.value)
    if wanted.user:
        conditions.append(Machine.user_id.in_(select(User.id).where(
            User.username == wanted.user.strip().lower())))
    if wanted.environment:
        conditions.append(Machine.environment_name == wanted.environment)
    if wanted.flavor:
        conditions.append(Machine.flavor == wanted.flavor)
    for hours in (wanted.older_than_hours, wanted.idle_hours):
        if hours is not None and hours < 0:
            raise InvalidInput("Ages and idle times are 0 hours or more.")
    if wanted.older_than_hours is not None:
        conditions.append(Machine.created_at <= now - timedelta(hours=wanted.older_than_hours))
    if wanted.idle_hours is not None:
        since = now - timedelta(hours=wanted.idle_hours)
        # idle_since: the later of becoming ready and the last desktop connection
        conditions += [Machine.state == State.READY.value, Machine.state_changed_at <= since,
                       or_(Machine.desktop_seen_at.is_(None), Machine.desktop_seen_at <= since)]
    total = db.scalar(select(func.count(Machine.id)).where(*conditions)) or 0
    rows = db.scalars(select(Machine).where(*conditions).options(joinedload(Machine.user))
                      .order_by(Machine.created_at.desc(), Machine.id).limit(limit))
    return list(rows), total


def machines_by_ids(db: Session, machine_ids: Sequence[str]) -> list[Machine]:
    """Return the machines with these ids (unknown ids are left out), newest first, with
    their owners. Raises nothing beyond database errors."""
    return list(db.scalars(select(Machine).where(Machine.id.in_(list(machine_ids)))
                           .options(joinedload(Machine.user))
                           .order_by(Machine.created_at.desc(), Machine.id)))


def idle_for(machine: Machine, now: datetime) -> timedelta | None:
    """Return how long a ready machine has had no desktop connection (None unless ready).
    Raises nothing."""
    if machine.state != State.READY.value:
        return None
    return now - idle_since(machine.state_changed_at, machine.desktop_seen_at)


Action = Literal["stop", "delete"]


@dataclass
class BulkResult:
    """What a bulk action did: the machines it asked to stop or delete, and those it could
    not act on with the reason (not found, not ready, ...)."""

    action: Action
    reason: str
    done: list[str] = field(default_factory=list)
    refused: list[tuple[str, str]] = field(default_factory=list)


def bulk_action(db: Session, admin: User, provider: Provider, action: str,
                machine_ids: Sequence[str], reason: object) -> BulkResult:
    """Ask for each machine in ``machine_ids`` to be stopped or deleted through the machines'
    own paths (:func:`request_stop`, :func:`request_delete`: the reconciler does the work),
    with ``reason`` in the event's message and on the owner's machine card and page; each one
    audited once, as ``machine.stop`` / ``machine.delete`` flagged as an administrator's with
    "admin bulk stop: <reason>" in its detail. A machine that cannot be acted on
    is listed in ``refused`` with the reason and the others go ahead. Raises InvalidInput for
    an unknown action, no machines or more than :data:`MAX_BULK`, or a bad reason."""
    if action not in ("stop", "delete"):
        raise InvalidInput("The action is 'stop' or 'delete'.")
    ids = list(dict.fromkeys(machine_ids))
    if not ids or len(ids) > MAX_BULK:
        raise InvalidInput(f"Choose 1 to {MAX_BULK} machines.")
    text = clean_reason(reason)
    result = BulkResult("stop" if action == "stop" else "delete", text)
    for machine_id in ids:
        try:
            if action == "stop":
                machine = request_stop(db, admin, machine_id, provider, reason=text,
                                       how="admin bulk stop")
            else:
                machine = request_delete(db, admin, machine_id, reason=text,
                                         how="admin bulk delete")
        except PortalError as error:
            result.refused.append((machine_id, error.user_message))
            continue
        result.done.append(machine.id)
    return result
