"""The worker's part of warm pools: refill, replace, give way, personalise.

:class:`PoolKeeper` runs inside the reconciler's cycle and keeps its shape: one read of the
pooled and claimed machines, a short write only for a machine that changes, no transaction
open during a provider call.

- **Refill**: each configured pool (setting ``warm_pools``) gets new ``requested`` machines
  owned by the pool account up to its size; the reconciler's launch phase starts them like
  any launch, with the pool account's identity and no folders (:func:`launch_spec`), so
  nothing of a user is on them.
- **Shrink**: a pool whose size an administrator lowered (or whose schedule's window ended)
  sheds its newest machines.
- **Schedule**: the size in force is the schedule's window's, if one holds now (facility
  time), else the administrator's size, else the setting's (:mod:`.sizes`).
- **Replace**: a pooled machine older than ``warm_pool_max_age_minutes`` is deleted (its
  pool is refilled in the same pass).
- **Give way**: pools fill only while more than ``warm_pool_free_sessions`` session slots
  (and a GPU, for a GPU flavor) stay free; when a user's launch waits for capacity, a pooled
  machine is deleted to make room.
- **Personalise**: a claimed machine (``claimed_at`` set, ``personalised_at`` not) is handed
  to its user by :meth:`Provider.personalise` with the user's LaunchSpec (their account,
  folders, experiment data); the poll then moves it to ready. A worker killed in between
  leaves it claimed (the next worker personalises it again) or the ready timeout fails and
  deletes it: it never goes back to a pool.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from statistics import median
from typing import TYPE_CHECKING

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from daaas.catalogue import Catalogue, Environment
from daaas.portal.config import ConfigError, Settings, parse_flavor_sizes
from daaas.portal.machines.models import Machine, MachineEvent
from daaas.portal.machines.service import transition
from daaas.portal.machines.spec import launch_spec
from daaas.portal.machines.states import State
from daaas.portal.pools.models import PoolSetting
from daaas.portal.pools.rules import PoolSize, parse_pools, parse_schedules, pool_key
from daaas.portal.pools.service import PoolFigures, figures_path, pool_account, write_figures
from daaas.portal.pools.sizes import choices_from_rows, plan_pool
from daaas.portal.providers import Capacity, LaunchSpec, ProviderError

if TYPE_CHECKING:
    from daaas.portal.machines.reconciler import CycleReport, Reconciler

log = logging.getLogger(__name__)

#: Pooled machines in these states are counted as the pool's (not deleting, failed or gone)
LIVE = frozenset({State.REQUESTED, State.PROVISIONING, State.CONTEXTUALISING, State.READY})
#: The expected wait is the median of this many last ready launches per environment/flavor
RECENT_LAUNCHES = 20
#: Only launches of this last while count for the expected waits (a bounded read at scale)
RECENT_WITHIN = timedelta(days=7)
#: At most this many recent launches are read for the expected waits (one bounded query)
RECENT_READ = 2000
#: A pooled machine waits this long beyond its age before the expiry phase would see it
FAR = timedelta(days=3650)


class PoolKeeper:
    """Keeps the warm pools of one reconciler (its provider must support pools)."""

    def __init__(self, reconciler: Reconciler, settings: Settings,
                 catalogue: Callable[[], Catalogue]) -> None:
        """``catalogue`` returns the site's catalogue (read when a pool is refilled).

        Raises ConfigError when the setting ``warm_pools`` or ``warm_pool_schedules`` is not
        well formed.
        """
        self.reconciler = reconciler
        self.settings = settings
        self.pools: tuple[PoolSize, ...] = parse_pools(settings.warm_pools)
        self.schedules = parse_schedules(settings.warm_pool_schedules)
        self._catalogue = catalogue
        self._environments: dict[str, Environment] | None = None

    # -- personalise --------------------------------------------------------------------------

    def personalise(self, report: CycleReport) -> int:
        """Hand each claimed machine not yet personalised to its user; returns how many were.
        Never raises for a provider's error (the machine fails and is deleted)."""
        r = self.reconciler
        done = 0
        for row in r._rows(select(Machine.id).where(
                Machine.state == State.CONTEXTUALISING.value, Machine.claimed_at.is_not(None),
                Machine.personalised_at.is_(None))):
            with r.claims.hold(row.id) as mine:
                if not mine:
                    continue
                spec = r._record(row.id, [State.CONTEXTUALISING], self._user_spec)
                if spec is None:
                    continue
                try:
                    r.provider.personalise(spec)
                except ProviderError as exc:
                    r._record_failure(row.id, [State.CONTEXTUALISING], exc.user_message,
                                      exc.log_message)
                    continue
                except OSError as exc:
                    r._record_failure(row.id, [State.CONTEXTUALISING],
                                      "Your storage could not be prepared for this machine; "
                                      "contact the facility's support.", f"{row.id}: {exc}")
                    continue
                if r._record(row.id, [State.CONTEXTUALISING], self._personalised):
                    done += 1
                    report.changed.append(row.id)
        return done

    def _user_spec(self, db: Session, machine: Machine) -> LaunchSpec | None:
        if machine.personalised_at is not None or machine.claimed_at is None:
            return None
        return launch_spec(self.settings, self.reconciler.secret_key, machine)

    def _personalised(self, db: Session, machine: Machine) -> bool:
        machine.personalised_at = self.reconciler.clock()
        db.add(MachineEvent(machine_id=machine.id, from_state=machine.state,
                            to_state=machine.state, at=machine.personalised_at,
                            message=(f"handed to {machine.user.username}; the machine sets "
                                     "itself up for them")
                            if self.reconciler.provider.uses_cloud_init
                            else f"set up for {machine.user.username}"))
        return True

    # -- refill, replace, give way ------------------------------------------------------------

    def maintain(self, report: CycleReport) -> None:
        """Replace over-age pooled machines, give way to waiting user launches, refill the
        pools and write their figures. Never raises for a provider's or the catalogue's
        error (logged; the next cycle tries again)."""
        r = self.reconciler
        now = r.clock()
        oldest = now - timedelta(minutes=self.settings.warm_pool_max_age_minutes)
        pooled = r._rows(select(Machine.id, Machine.pool, Machine.state, Machine.created_at)
                         .where(Machine.pool.is_not(None),
                                Machine.state.in_([s.value for s in LIVE]))
                         .order_by(Machine.created_at))
        live: Counter[str] = Counter()
        ready: Counter[str] = Counter()
        removed: set[str] = set()
        for row in pooled:
            if row.created_at <= oldest and self._remove(row.id, "replaced: it waited in its "
                                                         "pool longer than its maximum age"):
                removed.add(row.id)
                continue
            live[row.pool] += 1
            ready[row.pool] += row.state == State.READY.value
        # a pool made smaller (an administrator's size) sheds its newest machines first
        sizes = {pool_key(env.name, flavor): size for env, flavor, size in self._resolved()}
        for row in reversed(pooled):
            if row.id in removed or row.pool not in sizes or live[row.pool] <= sizes[row.pool]:
                continue
            if self._remove(row.id, "removed: its pool was made smaller"):
                removed.add(row.id)
                live[row.pool] -= 1
                ready[row.pool] -= row.state == State.READY.value
        try:
            capacity = r.provider.capacity()
        except ProviderError as exc:
            log.warning("warm pools not refilled: capacity unknown: %s", exc.log_message)
            return
        waiting = r._rows(select(func.count(Machine.id)).where(
            Machine.state == State.REQUESTED.value, Machine.pool.is_(None)))[0][0]
        free = capacity.sessions_free
        short = 0 if free is None else waiting - max(free, 0)
        if short > 0:
            # users' launches would find no slot: the oldest pooled machines make room now
            # (deleted at the provider before this cycle's launches)
            for row in [row for row in pooled if row.id not in removed][:short]:
                if self._remove(row.id, "removed to make room for a user's launch"):
                    self._delete_now(row.id)
                    removed.add(row.id)
                    live[row.pool] -= 1
                    ready[row.pool] -= row.state == State.READY.value
        else:
            self._refill(live, capacity, waiting, now)
        self._write_figures(live, ready, now)

    def _remove(self, machine_id: str, why: str) -> bool:
        """Ask for the deletion of a pooled machine not claimed meanwhile; True if asked."""
        return bool(self.reconciler._record(
            machine_id, LIVE, lambda db, machine: machine.pool is not None
            and transition(db, machine, State.DELETING, why) is not None))

    def _delete_now(self, machine_id: str) -> None:
        """Delete a pooled machine at the provider at once (no transaction open) and record
        it; left to the deletion phase if the provider fails now."""
        r = self.reconciler
        with r.claims.hold(machine_id) as mine:
            if mine and r._delete_at_provider(machine_id, "give way"):
                r._record(machine_id, [State.DELETING], lambda db, machine: transition(
                    db, machine, State.DELETED, "removed at the provider"))

    def _environments_by_name(self) -> dict[str, Environment]:
        if self._environments is None:
            self._environments = dict(self._catalogue().environments)
        return self._environments

    def _resolved(self) -> list[tuple[Environment, str, int]]:
        """The configured pools with their environment, flavor and size in force now (the
        schedule's window, else an administrator's size, else the setting's: one read of
        ``pool_settings``); unknown ones logged."""
        found = []
        choices = choices_from_rows(self.reconciler._rows(
            select(PoolSetting.key, PoolSetting.size, PoolSetting.schedule)))
        try:
            environments = self._environments_by_name()
        except (ConfigError, OSError) as exc:
            log.warning("warm pools: the catalogue cannot be read: %s", exc)
            return []
        now = self.reconciler.clock()
        for pool in self.pools:
            env = environments.get(pool.environment)
            plan = None if env is None else plan_pool(self.settings, pool, env, choices,
                                                      self.schedules, now)
            if env is None or plan is None:
                log.warning("warm pools: no environment %s with flavor %s in the catalogue",
                            pool.environment, pool.flavor or "(its default)")
                continue
            if self.reconciler.provider.unavailable_reason(env):
                log.warning("warm pools: %s cannot run on this provider", env.name)
                continue
            found.append((env, plan.flavor, plan.size_now))
        return found

    def _refill(self, live: Counter[str], capacity: Capacity, waiting: int,
                now: datetime) -> None:
        """Record new pooled machines up to each pool's size, while capacity allows: the
        users' ``waiting`` launches and ``warm_pool_free_sessions`` slots stay free."""
        free = capacity.sessions_free
        room = None if free is None \
            else free - waiting - self.settings.warm_pool_free_sessions
        gpus = capacity.gpus_free
        sizes = parse_flavor_sizes(self.settings.flavor_sizes)
        wanted: list[tuple[Environment, str]] = []
        for env, flavor, size in self._resolved():
            why = self.reconciler.provider.pool_unavailable_reason(env)
            if why:  # e.g. its image's agent cannot wait for a claim
                log.warning("warm pools: no pool of %s: %s", env.name, why)
                continue
            for _ in range(max(0, size - live[pool_key(env.name, flavor)])):
                if room is not None and room <= 0:
                    break
                if flavor in env.flavors.gpu:
                    need = sizes[flavor].gpus if flavor in sizes and sizes[flavor].gpus else 1
                    if gpus is not None and gpus < need:
                        break
                    gpus = None if gpus is None else gpus - need
                wanted.append((env, flavor))
                room = None if room is None else room - 1
        if not wanted:
            return
        with self.reconciler.session_factory.begin() as db:
            account = pool_account(db, self.settings)
            for env, flavor in wanted:
                key = pool_key(env.name, flavor)
                machine = Machine(id=uuid.uuid4().hex, user=account, name=f"pool {key}",
                                  environment_name=env.name, environment=env, flavor=flavor,
                                  provider=self.settings.provider, state=State.REQUESTED.value,
                                  created_at=now, state_changed_at=now, expires_at=now + FAR,
                                  pool=key)
                db.add(machine)
                db.add(MachineEvent(machine_id=machine.id, from_state=None,
                                    to_state=State.REQUESTED.value, at=now,
                                    message=f"started for the warm pool {key}"))
            log.info("warm pools: %d machine(s) asked for", len(wanted))

    def _write_figures(self, live: Counter[str], ready: Counter[str], now: datetime) -> None:
        """Write each pool's figures for the cards and the admin page (never raises)."""
        r = self.reconciler
        hour = now - timedelta(hours=1)
        try:
            pools = self._resolved()
            keys = [pool_key(env.name, flavor) for env, flavor, _ in pools]
            claimed = Counter({row.key: row.n for row in r._rows(
                select((Machine.environment_name + "/" + Machine.flavor).label("key"),
                       func.count(Machine.id).label("n"))
                .where(Machine.claimed_at > hour).group_by(Machine.environment_name,
                                                           Machine.flavor))})
            launched = Counter({row.key: row.n for row in r._rows(
                select((Machine.environment_name + "/" + Machine.flavor).label("key"),
                       func.count(Machine.id).label("n"))
                .where(Machine.pool.is_(None),
                       func.coalesce(Machine.claimed_at, Machine.created_at) > hour)
                .group_by(Machine.environment_name, Machine.flavor))})
            sizes = parse_flavor_sizes(self.settings.flavor_sizes)
            waits = self._expected_waits()
            figures = []
            for (env, flavor, size), key in zip(pools, keys, strict=True):
                gpu = sizes[flavor].gpus if flavor in sizes and sizes[flavor].gpus else 1
                figures.append(PoolFigures(
                    key=key, size=size, ready=ready[key], starting=live[key] - ready[key],
                    claimed_last_hour=claimed[key], launches_last_hour=launched[key],
                    held_sessions=live[key],
                    held_gpus=live[key] * gpu if flavor in env.flavors.gpu else 0,
                    expected_wait=waits.get(key)))
            write_figures(figures_path(self.settings), figures, now, waits)
        except Exception:  # a page's hint is not worth a failed cycle
            log.exception("warm pools: figures not recorded")

    def _expected_waits(self) -> dict[str, float]:
        """Return, by "environment/flavor", the median seconds from requested to ready of the
        last :data:`RECENT_LAUNCHES` users' launches that a pool did not serve, within
        :data:`RECENT_WITHIN` (one query:
        each machine's first entry into both states). Raises only database errors."""
        first = (select(MachineEvent.machine_id,
                        func.min(case((MachineEvent.to_state == State.REQUESTED.value,
                                       MachineEvent.at))).label("asked"),
                        func.min(case((MachineEvent.to_state == State.READY.value,
                                       MachineEvent.at))).label("ready"))
                 .where(MachineEvent.to_state.in_([State.REQUESTED.value, State.READY.value]),
                        MachineEvent.at > self.reconciler.clock() - RECENT_WITHIN)
                 .group_by(MachineEvent.machine_id).subquery())
        rows = self.reconciler._rows(
            select(Machine.environment_name, Machine.flavor, first.c.asked, first.c.ready)
            .join(first, first.c.machine_id == Machine.id)
            .where(Machine.pool.is_(None), Machine.claimed_at.is_(None),
                   first.c.asked.is_not(None), first.c.ready.is_not(None))
            .order_by(first.c.ready.desc()).limit(RECENT_READ))
        recent: dict[str, list[float]] = {}
        for row in rows:
            seconds = recent.setdefault(pool_key(row.environment_name, row.flavor), [])
            if len(seconds) < RECENT_LAUNCHES:
                seconds.append(max(0.0, (row.ready - row.asked).total_seconds()))
        return {key: median(seconds) for key, seconds in recent.items()}
