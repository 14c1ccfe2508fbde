"""The reconciler: drives every machine toward its desired state through the provider.

In a launch (docs/architecture.md, "A launch, step by step") it runs step 2, claim (a
requested machine), step 3, context (:func:`daaas.portal.bootstrap.userdata.launch_user_data`),
step 4, provider launch (:func:`daaas.portal.machines.spec.launch_spec`), and, after the
machine phoned home (step 5, :mod:`daaas.portal.bootstrap.service`), step 6, ready. It also
stops, starts, times out, expires and deletes machines.

How a cycle touches the database:

- **Read, compare, write only what changed.** Each phase reads the few columns it needs of
  the machines it may act on in ONE query, decides in memory, and opens a write transaction
  only for a machine whose state changes. An idle cycle (every machine ready) is a handful of
  reads and one provider poll, whatever the number of machines.
- **Claim → provider call → record.** No transaction is open while the provider is called: a
  slow cloud holds no lock that a page or a token's use would wait for. A worker first claims
  the machine (:mod:`daaas.portal.machines.claims`, released by the OS or the database if the
  worker dies), prepares what the call needs in a short transaction, calls the provider, and
  records the outcome in another short transaction, if the machine is still in the state the
  call was made for.
- **Idempotent and crash-safe.** The provider knows a machine by the portal's machine id, so a
  worker killed between "launch" and "record" leaves the machine requested, and the next
  worker's launch finds the machine the provider already has. A machine that fails is marked
  for clean-up; the clean-up phase removes it at the provider, again outside a transaction.
- The provider is polled with ONE batched call per cycle for all machines.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial
from typing import Any, TypeVar, cast

from sqlalchemy import ColumnElement, Executable, Row, func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from daaas.contextualisation import ContextualisationError
from daaas.portal.analysis.service import load_site_catalogue
from daaas.portal.audit.service import record
from daaas.portal.auth.models import BrowserSession
from daaas.portal.bootstrap.models import MachineContext
from daaas.portal.bootstrap.pooling import POOLED_READY
from daaas.portal.bootstrap.service import vm_report
from daaas.portal.bootstrap.userdata import launch_user_data
from daaas.portal.config import Settings, parse_hours_list
from daaas.portal.db import AutocommitConnection, make_engine, utcnow
from daaas.portal.hpc.activity import machines_with_jobs
from daaas.portal.machines import homes, notices
from daaas.portal.machines.activity import MachineActivity, busy_until
from daaas.portal.machines.address import address_json
from daaas.portal.machines.capacity import REFRESH_SECONDS, capacity_path, write_capacity
from daaas.portal.machines.changes import announce_changes
from daaas.portal.machines.claims import Claims
from daaas.portal.machines.extensions import machine_policy
from daaas.portal.machines.lifetime import hours_text, idle_since, maybe_connected, warning_due
from daaas.portal.machines.models import Machine, MachineEvent
from daaas.portal.machines.orphans import FILE_NAME as ORPHANS_FILE
from daaas.portal.machines.orphans import find_orphans, write_orphans
from daaas.portal.machines.service import transition
from daaas.portal.machines.spec import launch_spec
from daaas.portal.machines.states import AT_PROVIDER, FINAL, POLLED, STARTING, State
from daaas.portal.machines.wakeup import Waker
from daaas.portal.notifications.mail import Mailer, mailer_for
from daaas.portal.notifications.models import PENDING, Notification
from daaas.portal.notifications.service import send_pending
from daaas.portal.observers import Observers
from daaas.portal.pools.keeper import PoolKeeper
from daaas.portal.providers import (
    CapacityExhausted,
    LaunchSpec,
    MachineGone,
    MissingSystemPackages,
    Provider,
    ProviderError,
    ProviderState,
    ProviderStatus,
    ProviderUnavailable,
)
from daaas.portal.storage.service import note_missing_storage

log = logging.getLogger(__name__)
GONE_REASON = ("The machine disappeared at the provider (it was removed or crashed). Delete "
               "it and launch a new one; your storage is kept.")
STORAGE_REASON = ("Your storage could not be prepared for this machine; contact the "
                  "facility's support.")
T = TypeVar("T")
STATES = {state.value: state for state in State}  # faster than State(value) for 10,000 rows
#: Polled every cycle: machines on their way, which a person waits for or asked to stop
MOVING = frozenset({State.PROVISIONING, State.CONTEXTUALISING, State.STOPPING})
#: How often :meth:`Reconciler.run_forever` polls the ready and stopped machines as well
#: (seconds): at 10,000 machines reading and comparing them all is the idle cycle's cost
STEADY_POLL_SECONDS = 60.0


@dataclass
class CycleReport:
    """What one reconcile cycle did, machine ids per action."""

    launched: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    errored: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)
    polls: int = 0
    mails: int = 0


class Step(enum.Enum):
    """What a poll's answer asks of one machine (:func:`poll_step`)."""

    NOTHING = "nothing"  # the database already says what the provider says
    RECORD = "record"    # a state change: written in the machine's own transaction
    STOP = "stop"        # ask the provider to stop it (the user asked)
    START = "start"      # ask the provider to start it again (the user asked)


def poll_step(state: State, status: ProviderStatus, reported: str | None,
              uses_cloud_init: bool) -> Step:
    """Return what the provider's ``status`` asks of a machine recorded in ``state``.

    ``reported`` is what a cloud-init machine last reported ("ready", "failed" or None).
    Decided without the database, so an idle cycle writes nothing; :meth:`Reconciler._apply`
    makes each RECORD change.
    """
    seen = status.state
    if seen in (ProviderState.ERROR, ProviderState.GONE):
        return Step.RECORD
    stopped = seen is ProviderState.STOPPED
    if state is State.STOPPING:
        return Step.RECORD if stopped else Step.STOP
    if state is State.STOPPED:
        return Step.NOTHING if stopped else Step.RECORD
    if stopped:  # provisioning: the user's start; ready or contextualising: stopped outside
        return Step.START if state is State.PROVISIONING else Step.RECORD
    if state is State.PROVISIONING:
        return Step.RECORD if seen in (ProviderState.RUNNING, ProviderState.READY) \
            else Step.NOTHING
    if state is State.CONTEXTUALISING and uses_cloud_init:
        return Step.RECORD if reported in ("ready", "failed") else Step.NOTHING
    if state is State.CONTEXTUALISING:
        return Step.RECORD if seen is ProviderState.READY else Step.NOTHING
    return Step.NOTHING


def seen_report(reported: str | None, pooled: bool) -> str | None:
    """Return what a machine's report means to :func:`poll_step`: a warm pool's cloud machine
    reporting ``pooled-ready`` is ready while ``pooled`` (in its pool) and not yet once
    claimed (its user's set-up follows). Raises nothing."""
    if reported == POOLED_READY:
        return "ready" if pooled else None
    return reported


class Reconciler:
    """Runs reconcile cycles against one provider."""

    def __init__(self, session_factory: sessionmaker[Session], provider: Provider, *,
                 secret_key: str, ready_timeout_seconds: float,
                 clock: Callable[[], datetime] = utcnow, settings: Settings | None = None,
                 mailer: Mailer | None = None) -> None:
        """``settings`` (where VMs reach the portal) is needed by a cloud-init provider, and
        for expiry warnings and e-mail (without them none are queued or sent). ``mailer``
        sends the outbox's messages; default: the settings' (:func:`mailer_for`).

        Raises ValueError when the provider uses cloud-init and no settings are given.
        """
        if provider.uses_cloud_init and settings is None:
            raise ValueError(f"the {provider.name} provider uses cloud-init: pass the settings")
        self.session_factory = session_factory
        announce_changes(session_factory)  # pages waiting for a machine learn it changed (push)
        self.provider = provider
        self.secret_key = secret_key
        self.ready_timeout = ready_timeout_seconds
        self.clock = clock
        self.settings = settings
        engine = session_factory.kw["bind"]
        self.claims = Claims(engine)
        #: What wakes a waiting worker early: a launch, stop, start or delete committed by the
        #: portal (:mod:`daaas.portal.machines.wakeup`).
        self.waker = Waker(engine)
        #: The cycle's reads, on one connection in autocommit (see :meth:`_rows`); an
        #: in-memory SQLite database cannot be opened twice: its reads are transactions.
        memory = engine.dialect.name == "sqlite" and engine.url.database in (None, "", ":memory:")
        self._reader = None if memory else _AutocommitReads(engine)
        #: Where the pages read the provider's capacity (written every REFRESH_SECONDS); only
        #: with settings (a reconciler made without them keeps none).
        self.capacity_file = capacity_path(settings) if settings is not None else None
        self._capacity_read_at: datetime | None = None
        self._idle_checked_at: datetime | None = None
        self._purge_checked_at: datetime | None = None
        self._idle_minutes: dict[str, int | None] = {}  # see _idle_timeouts
        #: Hours before expiry at which owners are warned (largest first).
        self.warnings = parse_hours_list(settings.expiry_warning_hours) if settings else ()
        self.mailer = mailer if mailer is not None or settings is None else mailer_for(settings)
        #: Warm pools (issue 20), when configured and the provider can keep them
        self.pools = PoolKeeper(self, settings, partial(load_site_catalogue, settings)) \
            if settings is not None and settings.warm_pools and provider.supports_pools \
            else None
        #: Slurm jobs and ICAT experiments observed for the pages (issue 19), when due
        self.observers = Observers(session_factory, settings, clock, self.claims) \
            if settings else None

    def adopt(self) -> set[str]:
        """At start-up: keep provider machines the database expects, remove all others.

        Returns the adopted ids. Raises ProviderError when the provider cannot be asked.
        """
        with self.session_factory() as db:
            expected = set(db.scalars(select(Machine.id).where(
                Machine.state.not_in([s.value for s in FINAL | {State.ERROR}]))))
        adopted = self.provider.adopt_or_cleanup(expected)
        log.info("reconciler adopted %d running machine(s)", len(adopted))
        return adopted

    def run_once(self, *, steady: bool = True) -> CycleReport:
        """Run one cycle: launch (steps 2-4), poll (one call; step 6, ready, and the stops and
        starts it finds asked for), time out, expire, delete, clean up. ``steady``: poll the
        ready and stopped machines too, not only those on their way (:data:`MOVING`);
        :meth:`run_forever` does every STEADY_POLL_SECONDS."""
        report = CycleReport()
        if self.pools is not None:
            self.pools.personalise(report)
            self.pools.maintain(report)
        self._launch_requested(report)
        self._poll(report, POLLED if steady else MOVING)
        self._record_addresses()
        self._time_out(report)
        self._warn(report)
        self._stop_idle(report)
        self._expire(report)
        self._delete_requested(report)
        self._clean_up(report)
        self._purge_homes(report)
        self._send_mail(report)
        self._refresh_capacity()
        if self.observers is not None:
            self.observers.run_due()
        return report

    def run_asked(self) -> CycleReport:
        """Run only what a person asked for and waits on: the VMs' set-up reports (step 6,
        without a provider call: a report's commit wakes the worker), launches (steps 2-4),
        then one poll of the machines on their way (a desktop up at launch is ready in this
        cycle, not the next: issue 20, the click path), and deletions. The rest (stops and
        starts, time-outs, the steady poll) waits for the next full cycle."""
        report = CycleReport()
        self._apply_reports(report)  # a VM's set-up report woke us: step 6 at once
        if self.pools is not None and self.pools.personalise(report):
            self._poll(report, MOVING)  # a claimed machine's user waits: ready at once
        self._launch_requested(report)
        if report.launched:
            self._poll(report, MOVING)  # the user waits for ready
        self._delete_requested(report)
        self._clean_up(report)
        if self.pools is not None:  # refill after a claim
            self.pools.maintain(report)
            self._launch_requested(report)
        return report

    def run_forever(self, stop: threading.Event, interval: float) -> None:
        """Run a full cycle every ``interval`` seconds and, when the portal records a launch,
        stop, start or delete in between, :meth:`run_asked` at once; until ``stop`` is set.
        The ready and stopped machines are polled every STEADY_POLL_SECONDS only (a change
        behind the portal's back is rare; what a person waits for is on its way, polled every
        cycle). Never raises."""
        due, woken = 0.0, False  # when the next full cycle is due (time.monotonic)
        steady_due = 0.0  # when the ready and stopped machines are polled next
        self.waker.listen()  # a wake-up sent during the first cycle wakes the first wait
        while not stop.is_set():
            try:
                if woken and time.monotonic() < due:
                    self.run_asked()
                else:
                    steady = time.monotonic() >= steady_due
                    if steady:
                        steady_due = time.monotonic() + STEADY_POLL_SECONDS
                    self.run_once(steady=steady)
                    due = time.monotonic() + interval
            except Exception:  # keep the loop alive; the next cycle retries
                log.exception("reconcile cycle failed")
            woken = self.waker.wait(max(0.0, due - time.monotonic()), stop)

    def _refresh_capacity(self) -> None:
        """Read the provider's capacity and find the orphans for the pages (next to each
        other in the var folder), at most every REFRESH_SECONDS.

        A provider that cannot tell now is asked again next cycle; the pages keep the last
        reading until it is stale. Never raises: the cycle's real work is done already.
        """
        now = self.clock()
        if self.capacity_file is None or (
                self._capacity_read_at is not None
                and (now - self._capacity_read_at).total_seconds() < REFRESH_SECONDS):
            return
        try:
            write_capacity(self.capacity_file, self.provider.capacity(), now)
            self._capacity_read_at = now
        except ProviderError as exc:
            log.warning("capacity not read: %s", exc.log_message)
        except Exception:  # a page's hint is not worth a failed cycle
            log.exception("capacity not recorded")
        try:  # the provider is asked before the session's first read: no transaction open
            with self.session_factory() as db:
                found = find_orphans(db, self.provider)
            write_orphans(self.capacity_file.with_name(ORPHANS_FILE), found, now)
        except ProviderError as exc:
            log.warning("orphans not listed: %s", exc.log_message)
        except Exception:
            log.exception("orphans not recorded")

    # -- the database: one read per phase, one short write per changed machine ---------------

    def _rows(self, query: Executable) -> Sequence[Row[Any]]:
        """Return the rows of one read as plain rows (no ORM objects are built for what is
        only compared). Reads share one connection in autocommit, each seeing what is
        committed when it runs: on PostgreSQL one round trip instead of four (pool check,
        BEGIN, query, ROLLBACK), on SQLite without the write lock a worker's transaction
        takes (``BEGIN IMMEDIATE``), so a page's commit never waits for a read."""
        if self._reader is not None:
            return self._reader.rows(query)
        with self.session_factory() as db:
            return db.connection().execute(query).all()

    def _ids(self, states: Iterable[State], *extra: ColumnElement[bool]) -> list[str]:
        query = select(Machine.id).where(Machine.state.in_([s.value for s in states]), *extra)
        return [row.id for row in self._rows(query.order_by(Machine.created_at))]

    def _record(self, machine_id: str, states: Iterable[State],
                change: Callable[[Session, Machine], T]) -> T | None:
        """Apply ``change`` to the machine in its own transaction, if it is still in one of
        ``states`` (a user may have asked for something else meanwhile); returns what
        ``change`` returned, or None when the machine has moved on."""
        with self.session_factory.begin() as db:
            machine = db.scalar(select(Machine).where(
                Machine.id == machine_id, Machine.state.in_([s.value for s in states]))
                .with_for_update())
            return None if machine is None else change(db, machine)

    # -- a launch: claim (2), context (3) and provider launch (4); ready (6) in the poll ------

    def _launch_requested(self, report: CycleReport) -> None:
        """Step 2, claim, then steps 3 and 4, for each requested machine (oldest first)."""
        for machine_id in self._ids([State.REQUESTED]):
            with self.claims.hold(machine_id) as mine:
                if mine and self._launch(machine_id):
                    report.launched.append(machine_id)

    def _launch(self, machine_id: str) -> bool:
        """Step 3, context, in a short transaction; step 4, provider launch, with none open;
        then the outcome recorded. Returns True when the provider accepted the machine."""
        spec = self._record(machine_id, [State.REQUESTED], self._prepare_launch)
        if spec is None:
            return False
        try:
            self.provider.launch(spec)
        except MissingSystemPackages as exc:  # waiting will not help
            return self._launch_failed(machine_id, exc.user_message, exc.log_message)
        except ProviderUnavailable as exc:  # transient: retried until the ready timeout
            log.warning("launch of %s postponed: %s", machine_id, exc.log_message)
            return False
        except ProviderError as exc:
            return self._launch_failed(machine_id, exc.user_message, exc.log_message)
        except OSError as exc:  # the user's storage could not be prepared on this host
            return self._launch_failed(machine_id, STORAGE_REASON, f"{machine_id}: {exc}")
        return self._record(machine_id, [State.REQUESTED], lambda db, machine: transition(
            db, machine, State.PROVISIONING,
            f"accepted by the {self.provider.name} provider")) is not None

    def _launch_failed(self, machine_id: str, reason: str, log_message: str) -> bool:
        """Record a launch the provider refused; returns False (not launched)."""
        self._record_failure(machine_id, [State.REQUESTED], reason, log_message)
        return False

    def _prepare_launch(self, db: Session, machine: Machine) -> LaunchSpec | None:
        """Step 3 (cloud-init providers only) and the LaunchSpec; None when the machine failed
        (recorded in ``db``) or its storage service is unavailable (retried next cycle)."""
        try:
            user_data = None
            if self.provider.uses_cloud_init and self.settings is not None:
                user_data = launch_user_data(db, self.settings, self.secret_key, machine,
                                             self.clock())
                note_missing_storage(db, self.settings, machine, self.clock())
            return launch_spec(self.settings, self.secret_key, machine, user_data)
        except OSError as exc:
            self._fail(db, machine, STORAGE_REASON, f"{machine.id}: {exc}")
        except ContextualisationError as exc:  # waiting will not help
            self._fail(db, machine, exc.user_message, exc.log_message)
        except ProviderUnavailable as exc:  # e.g. the share service: retried next cycle
            log.warning("launch of %s postponed: %s", machine.id, exc.log_message)
        except ProviderError as exc:  # e.g. the share quota: the user is told
            self._fail(db, machine, exc.user_message, exc.log_message)
        return None

    def _poll(self, report: CycleReport, states: frozenset[State]) -> None:
        """One provider poll for every machine in ``states`` (:data:`POLLED`, or only those on
        their way, :data:`MOVING`); a write only where a state changes."""
        # the (state, id) index alone: 10,000 rows with their environment snapshots are not read
        rows = self._rows(select(Machine.id, Machine.state)
                          .where(Machine.state.in_([s.value for s in states])))
        if not rows:
            return
        # unpacked, not row.id: a Row's attribute look-up costs more than the rest per row
        seen = {machine_id: STATES[state]
                for machine_id, state in cast("Sequence[tuple[str, str]]", rows)}
        reports = self._vm_reports() if State.CONTEXTUALISING in seen.values() else {}
        statuses = self.provider.poll(list(seen))
        report.polls += 1
        cloud_init = self.provider.uses_cloud_init
        for machine_id, status in statuses.items():
            state = seen.get(machine_id)
            if state is None:
                continue
            step = poll_step(state, status, reports.get(machine_id), cloud_init)
            if step is Step.RECORD and self._record(machine_id, [state],
                                                    partial(self._apply, status=status)):
                report.changed.append(machine_id)
            elif step in (Step.STOP, Step.START):
                self._stop_or_start(machine_id, state, step)

    def _apply_reports(self, report: CycleReport) -> None:
        """Step 6 for the contextualising machines whose VM reported ready or failed (the
        report's commit wakes the worker), without asking the provider: one read of the few
        machines setting themselves up, a write only for one that reported."""
        if not self.provider.uses_cloud_init:
            return
        for machine_id, seen in self._vm_reports().items():
            if seen in ("ready", "failed") and self._record(
                    machine_id, [State.CONTEXTUALISING], self._report_applied):
                report.changed.append(machine_id)

    def _report_applied(self, db: Session, machine: Machine) -> bool:
        """Apply a contextualising machine's report as the poll would; True if its state
        changed."""
        before = machine.state
        self._apply_vm_report(db, machine)
        if machine.state == State.READY.value:
            self._notify_ready(db, machine)
        return machine.state != before

    def _vm_reports(self) -> dict[str, str | None]:
        """Return what each contextualising machine last reported (:func:`seen_report`), by
        machine id: one read of the few machines setting themselves up."""
        rows = self._rows(select(MachineContext.machine_id, MachineContext.reported_status,
                                 Machine.pool.is_not(None))
                          .join(Machine, Machine.id == MachineContext.machine_id)
                          .where(Machine.state == State.CONTEXTUALISING.value))
        return {machine_id: seen_report(reported, pooled) for machine_id, reported, pooled
                in cast("Sequence[tuple[str, str | None, bool]]", rows)}

    def _record_addresses(self) -> None:
        """Ask the provider where each ready machine without a recorded address is reachable
        and record it (no transaction open during the call), so pages never ask (issue 19).

        One read through a partial index holding only such machines: an idle cycle finds
        none, calls nothing and writes nothing. A machine whose address cannot be read yet
        is asked again next cycle. Never raises for the provider."""
        # A machine waiting in a warm pool has no user's desktop to reach yet (a local one is
        # a reserved slot with no process): its address is read once it is claimed.
        for machine_id in self._ids([State.READY], Machine.address.is_(None),
                                    Machine.pool.is_(None)):
            try:
                target = self.provider.connection_target(machine_id)
            except ProviderError as exc:
                log.warning("address of %s not read, will retry: %s", machine_id,
                            exc.log_message)
                continue
            self._record(machine_id, [State.READY],
                         partial(_set_address, address=address_json(target)))

    def _apply(self, db: Session, machine: Machine, status: ProviderStatus) -> bool:
        """Record what the poll found (a RECORD of :func:`poll_step`); True if the state
        changed."""
        before = State(machine.state)
        if status.state is ProviderState.ERROR:
            self._fail(db, machine, status.reason or "The machine failed to start.",
                       status.log_message)
        elif status.state is ProviderState.GONE:
            self._fail(db, machine, GONE_REASON, f"provider reports {machine.id} gone")
        elif status.state is ProviderState.STOPPED or before in (State.STOPPING, State.STOPPED):
            self._apply_stop(db, machine, status)
        else:
            self._apply_running(db, machine, status)
        if machine.state == State.READY.value and before is not State.READY:
            self._notify_ready(db, machine)
        if machine.state != State.READY.value:  # a start may bring it back elsewhere
            machine.address = None
        return machine.state != before.value

    def _notify_ready(self, db: Session, machine: Machine) -> None:
        """Queue the owner's "ready" e-mail, in the transaction that made it ready, when they
        have no browser on the portal now (no request for AWAY_AFTER: the Analysis page asks
        every two seconds, and a session records that every 30 s)."""
        if self.settings is None:
            return
        now = self.clock()
        seen = db.scalar(select(func.max(BrowserSession.last_seen_at)).where(
            BrowserSession.user_id == machine.user_id, BrowserSession.ended_at.is_(None)))
        if seen is None or seen < now - AWAY_AFTER:
            notices.machine_ready(db, self.settings, machine, now)

    def _apply_running(self, db: Session, machine: Machine, status: ProviderStatus) -> None:
        """Move a machine the provider runs on toward ready."""
        state = State(machine.state)
        if status.state in (ProviderState.RUNNING, ProviderState.READY) \
                and state is State.PROVISIONING:
            transition(db, machine, State.CONTEXTUALISING, "machine is up; setting it up")
            state = State.CONTEXTUALISING
        if state is State.CONTEXTUALISING and self.provider.uses_cloud_init:
            self._apply_vm_report(db, machine)
        elif status.state is ProviderState.READY and state is State.CONTEXTUALISING \
                and (machine.claimed_at is None or machine.personalised_at is not None):
            # a claimed pooled machine is ready for its user only once handed to them
            transition(db, machine, State.READY, "desktop is ready")

    def _apply_vm_report(self, db: Session, machine: Machine) -> None:
        """Step 6, ready: move a contextualising machine on by what it reported, if anything.

        A machine started again after a stop does not set itself up a second time (cloud-init
        runs once per instance): the "ready" it reported on its first boot stands, so it is
        ready again as soon as the cloud runs it.
        """
        report = vm_report(db, machine.id)
        if report is not None and report.status == POOLED_READY:
            if machine.pool is not None:  # a claimed machine waits for its user's "ready"
                transition(db, machine, State.READY, "set up as far as it can be without a "
                                                     "user; waiting in its pool")
        elif report is not None and report.status == "ready" and started_again(machine):
            transition(db, machine, State.READY, "running again; it was set up before it was "
                                                 "stopped")
        elif report is not None and report.status == "ready":
            transition(db, machine, State.READY, "the machine reported it is set up")
        elif report is not None:
            self._fail(db, machine, report.user_message, f"{machine.id} reported: {report.reason}")

    # -- stop and start ----------------------------------------------------------------------

    def _apply_stop(self, db: Session, machine: Machine, status: ProviderStatus) -> None:
        """Follow a machine that is, or is being, stopped (the provider calls are
        :meth:`_stop_or_start`'s)."""
        state, stopped = State(machine.state), status.state is ProviderState.STOPPED
        if state is State.STOPPING and stopped:
            transition(db, machine, State.STOPPED, f"stopped at the {self.provider.name} "
                                                   "provider; its disk is kept")
        elif state is State.STOPPED and not stopped:
            transition(db, machine, State.PROVISIONING, "started outside the portal (the "
                       f"provider reports it {status.state.value})")
        elif state in (State.READY, State.CONTEXTUALISING):
            transition(db, machine, State.STOPPED, "stopped outside the portal ("
                       f"{status.reason or 'by the provider'}), e.g. by an administrator or "
                       "host maintenance; its disk is kept: start it again from its page")

    def _stop_or_start(self, machine_id: str, state: State, step: Step) -> None:
        """Claim the machine, ask the provider to stop or start it (both idempotent, asked again
        each cycle until the poll sees it done) and record a failure."""
        with self.claims.hold(machine_id) as mine:
            if not mine:
                return
            try:
                if step is Step.STOP:
                    self.provider.stop(machine_id)
                    return
                spec = self._record(machine_id, [state], lambda db, m: launch_spec(
                    self.settings, self.secret_key, m))
                if spec is not None:
                    self.provider.start(spec)
            except MachineGone as exc:
                self._record_failure(machine_id, [state], GONE_REASON, exc.log_message)
            except CapacityExhausted as exc:  # a start without room: stays stopped, disk kept
                message = f"could not be started: {exc.user_message}"
                self._record(machine_id, [state],
                             lambda db, m: transition(db, m, State.STOPPED, message))
            except ProviderUnavailable as exc:
                log.warning("%s of %s postponed: %s", step.value, machine_id, exc.log_message)
            except ProviderError as exc:
                if step is Step.STOP:  # still running: asked again next cycle
                    log.warning("stop of %s failed, will retry: %s", machine_id,
                                exc.log_message)
                else:
                    self._record_failure(machine_id, [state], exc.user_message,
                                         exc.log_message)
            except OSError as exc:  # the user's storage could not be prepared for a start
                self._record_failure(machine_id, [state], STORAGE_REASON, f"{machine_id}: {exc}")

    # -- time-outs, expiry, deletion, clean-up ---------------------------------------------

    def _time_out(self, report: CycleReport) -> None:
        """Fail machines that did not become ready within the ready timeout (counted from
        their launch, or from their last start after a stop)."""
        deadline = self.clock() - timedelta(seconds=self.ready_timeout)
        last_start = (select(func.max(MachineEvent.at))
                      .where(MachineEvent.machine_id == Machine.id,
                             MachineEvent.from_state == State.STOPPED.value,
                             MachineEvent.to_state == State.PROVISIONING.value)
                      .correlate(Machine).scalar_subquery())
        overdue = func.coalesce(last_start, Machine.claimed_at, Machine.created_at) <= deadline
        minutes = max(1, round(self.ready_timeout / 60))
        for row in self._rows(select(Machine.id, Machine.state).where(
                Machine.state.in_([s.value for s in STARTING]), overdue)):
            if self._record(row.id, STARTING, lambda db, m: self._fail(
                    db, m, f"The machine did not become ready within {minutes} minute(s) and "
                    "was removed. Try again; if it keeps happening, contact the facility's "
                    f"support.", f"{m.id} timed out in {m.state}")):
                report.errored.append(row.id)

    def _warn(self, report: CycleReport) -> None:
        """Queue an expiry warning for each machine that entered a warning window (settings'
        ``expiry_warning_hours``) and has none queued for it; one read of the machines due
        and one of their warnings, a write only for a new warning."""
        if not self.warnings or self.settings is None:
            return
        now = self.clock()
        # "not the other states", as in _expire: the expiry's index finds the few machines due
        outside = [s.value for s in State if s not in AT_PROVIDER]
        rows = self._rows(select(Machine.id, Machine.expires_at).where(
            Machine.expires_at > now,
            Machine.expires_at <= now + timedelta(hours=max(self.warnings)),
            Machine.state.not_in(outside)))
        if not rows:
            return
        queued = {key for (key,) in self._rows(select(Notification.key).where(
            Notification.kind == "expiry_warning",
            Notification.machine_id.in_([row.id for row in rows])))}
        for row in rows:
            hours = warning_due(row.expires_at - now, self.warnings)
            if hours is None or notices.expiry_warning_key(row.id, hours,
                                                           row.expires_at) in queued:
                continue
            if self._record(row.id, AT_PROVIDER, partial(self._queue_warning, now=now)):
                report.warned.append(row.id)

    def _queue_warning(self, db: Session, machine: Machine, now: datetime) -> bool:
        """Queue the warning due now for ``machine`` (read again, locked: an extension may have
        moved its end); True if a new one was queued."""
        assert self.settings is not None
        hours = warning_due(machine.expires_at - now, self.warnings)
        return hours is not None and notices.expiry_warning(
            db, self.settings, machine, hours, now) is not None

    def _stop_idle(self, report: CycleReport) -> None:
        """Stop (never delete) ready machines without a desktop connection for their
        environment's ``idle_timeout_minutes``, counted from the later of becoming ready and
        the last connection the desktop proxy recorded (``desktop_seen_at``). At most every
        ``idle_check_seconds``, with settings, and only where the provider can stop machines:
        one read of the ready machines' few columns (the timeout read from the snapshot's
        JSON by the database), a write only for a machine to stop or warn. The owner is warned
        by e-mail ``idle_warning_minutes`` before the stop (once per idle spell)."""
        now = self.clock()
        if self.settings is None or not self.settings.idle_stop \
                or not self.provider.supports_stop or (
                self._idle_checked_at is not None
                and (now - self._idle_checked_at).total_seconds()
                < self.settings.idle_check_seconds):
            return
        self._idle_checked_at = now
        warn_before = timedelta(minutes=self.settings.idle_warning_minutes)
        to_warn: list[tuple[str, datetime]] = []
        to_stop: list[str] = []
        rows = self._rows(select(Machine.id, Machine.state_changed_at, Machine.desktop_seen_at,
                                 MachineActivity.keep_running_until,
                                 MachineActivity.vm_active_at)
                          .outerjoin(MachineActivity)
                          .where(Machine.state == State.READY.value,
                                 Machine.pool.is_(None)))  # warm pools: no idle stop
        timeouts = self._idle_timeouts([row.id for row in rows])
        for row in rows:
            if not timeouts.get(row.id):
                continue
            since = idle_since(row.state_changed_at, row.desktop_seen_at,
                               busy_until(row.keep_running_until, row.vm_active_at))
            stop_at = since + timedelta(minutes=timeouts[row.id] or 0)
            if stop_at <= now and not maybe_connected(row.desktop_seen_at, now):
                to_stop.append(row.id)
            elif warn_before and stop_at - warn_before <= now:
                to_warn.append((row.id, since))
        if to_stop or to_warn:  # an unfinished HPC job launched from a machine: in use
            busy = self._with_jobs([machine_id for machine_id, _ in to_warn] + to_stop)
            to_warn = [(machine_id, since) for machine_id, since in to_warn
                       if machine_id not in busy]
            for machine_id in (m for m in to_stop if m not in busy):
                if self._record(machine_id, [State.READY],
                                partial(self._stop_one_idle, now=now)):
                    report.changed.append(machine_id)
        if to_warn:
            queued = {key for (key,) in self._rows(select(Notification.key).where(
                Notification.kind == "idle_warning",
                Notification.machine_id.in_([machine_id for machine_id, _ in to_warn])))}
            for machine_id, since in to_warn:
                if notices.idle_warning_key(machine_id, since) not in queued and self._record(
                        machine_id, [State.READY], partial(self._warn_idle, now=now)):
                    report.warned.append(machine_id)

    def _idle_timeouts(self, machine_ids: list[str]) -> dict[str, int | None]:
        """Return the idle timeout (minutes, or None) of each of ``machine_ids``, from their
        environment snapshots. A snapshot never changes, so each machine's is read once and
        kept: the idle check reads the ready machines from an index alone (0025), not 10,000
        rows with their snapshots each minute."""
        known = self._idle_minutes
        missing = [machine_id for machine_id in machine_ids if machine_id not in known]
        timeout = Machine.environment["limits"]["idle_timeout_minutes"].as_integer()
        for start in range(0, len(missing), 500):
            known.update(cast("Sequence[tuple[str, int | None]]", self._rows(
                select(Machine.id, timeout).where(Machine.id.in_(missing[start:start + 500])))))
        self._idle_minutes = {machine_id: known.get(machine_id) for machine_id in machine_ids}
        return self._idle_minutes

    def _with_jobs(self, machine_ids: list[str]) -> set[str]:
        """Return which of ``machine_ids`` have an unfinished HPC job launched from them (the
        jobs' states refreshed from the cluster where it can be asked), in a short
        transaction of its own. Never raises for the cluster (its recorded states count)."""
        assert self.settings is not None
        with self.session_factory.begin() as db:
            return machines_with_jobs(db, self.settings, machine_ids)

    def _warn_idle(self, db: Session, machine: Machine, now: datetime) -> bool:
        """Queue the owner's warning that ``machine`` will be stopped as idle (read again,
        locked); True if a new one was queued."""
        assert self.settings is not None
        since = _idle_since(db, machine)
        stop_at = since + timedelta(minutes=machine.environment.limits.idle_timeout_minutes)
        if not now < stop_at <= now + timedelta(minutes=self.settings.idle_warning_minutes):
            return False
        return notices.idle_warning(db, self.settings, machine, stop_at, since,
                                    now) is not None

    def _stop_one_idle(self, db: Session, machine: Machine, now: datetime) -> bool:
        """Ask for an idle machine's stop (read again, locked: a connection may have come
        meanwhile) and queue its owner's e-mail; True if it was stopped."""
        minutes = machine.environment.limits.idle_timeout_minutes
        since = _idle_since(db, machine)
        if since > now - timedelta(minutes=minutes) or maybe_connected(machine.desktop_seen_at,
                                                                       now):
            return False
        transition(db, machine, State.STOPPING, f"no desktop connection for {minutes} "
                   "minutes: stopped as idle (its disk and the owner's storage are kept)")
        record(db, "machine.stop", actor="worker", target=f"machine {machine.id}",
               detail=f"{machine.name}; idle for {minutes} minutes")
        if self.settings is not None:
            notices.idle_stopped(db, self.settings, machine, minutes, since, now)
        return True

    def _expire(self, report: CycleReport) -> None:
        """Delete machines past their end (the policy's lifetime, extensions included), with
        an event and, in the same transaction, the owner's e-mail. The user's storage is never
        touched: only the machine goes."""
        # "not the other states" leaves the expiry's index to find the few machines due
        outside = [s.value for s in State if s not in AT_PROVIDER]
        now = self.clock()
        due = select(Machine.id).where(Machine.expires_at <= now,
                                       Machine.state.not_in(outside))
        for machine_id in (row.id for row in self._rows(due)):
            if self._record(machine_id, AT_PROVIDER, partial(self._expire_one, now=now)):
                report.changed.append(machine_id)

    def _expire_one(self, db: Session, machine: Machine, now: datetime) -> bool:
        """Move an expired machine to deleting and queue its owner's e-mail; True. A machine
        extended meanwhile (its end now later) is left alone: False."""
        if machine.expires_at > now:
            return False
        lived = hours_text(machine.expires_at - machine.created_at)
        maximum = hours_text(machine_policy(machine).maximum)
        kept = homes.plan_keep(db, self.settings, machine, now, self.provider.keeps_homes) \
            if self.settings else None
        home = "" if kept is None else (f"; its home folder is kept until "
                                        f"{kept.purge_after:%d %b %Y} (an administrator can "
                                        "restore it into the owner's storage)")
        transition(db, machine, State.DELETING, f"reached the end of its lifetime ({lived}, "
                   f"of a maximum lifetime of {maximum} with extensions); deleted by policy, "
                   f"the owner's storage is kept{home}")
        record(db, "machine.delete", actor="worker", target=f"machine {machine.id}",
               detail=f"{machine.name}; end of its lifetime ({lived})")
        if self.settings is not None:
            notices.expired(db, self.settings, machine, lived, now, kept)
        return True

    def _send_mail(self, report: CycleReport) -> None:
        """Send what the outbox holds (:func:`send_pending`); never raises for a mail
        failure (the message stays pending and is tried next cycle)."""
        if self.mailer is None or self.settings is None or not self._rows(
                select(Notification.id).where(Notification.status == PENDING).limit(1)):
            return  # an empty outbox costs one indexed read, not a transaction
        report.mails += send_pending(self.session_factory, self.settings, self.mailer,
                                     self.claims, self.clock)

    def _delete_requested(self, report: CycleReport) -> None:
        deleting = self._ids([State.DELETING])
        keep = {row.machine_id for row in self._rows(select(homes.KeptHome.machine_id).where(
            homes.KeptHome.status == homes.PLANNED,
            homes.KeptHome.machine_id.in_(deleting)))} if deleting else set()
        for machine_id in deleting:
            with self.claims.hold(machine_id) as mine:
                if not mine:
                    continue
                if machine_id in keep:
                    done = self._delete_keeping_home(machine_id)
                else:
                    done = self._delete_at_provider(machine_id, "delete")
                if not done:
                    continue
                if self._record(machine_id, [State.DELETING], lambda db, m: transition(
                        db, m, State.DELETED, "removed at the provider")):
                    report.deleted.append(machine_id)

    def _delete_keeping_home(self, machine_id: str) -> bool:
        """Delete a machine whose home the policy keeps (moved under ``var_dir/kept-homes``)
        and record where, in one transaction; False (retried next cycle) if it failed."""
        assert self.settings is not None
        keep_at = homes.kept_root(self.settings) / machine_id
        try:
            kept = self.provider.delete_keeping_home(machine_id, keep_at) or keep_at.is_dir()
        except (ProviderError, OSError) as exc:  # retried next cycle
            log.warning("deletion of %s keeping its home failed, will retry: %s", machine_id,
                        getattr(exc, "log_message", exc))
            return False
        with self.session_factory.begin() as db:
            homes.mark_kept(db, machine_id, keep_at if kept else None)
        return True

    def _purge_homes(self, report: CycleReport) -> None:
        """Remove the kept homes whose grace period ended, at most every IDLE_CHECK_SECONDS
        (one read), each in its own transaction."""
        now = self.clock()
        if self.settings is None or (
                self._purge_checked_at is not None
                and (now - self._purge_checked_at).total_seconds() < IDLE_CHECK_SECONDS):
            return
        self._purge_checked_at = now
        for row in self._rows(select(homes.KeptHome.id).where(
                homes.KeptHome.status == homes.KEPT, homes.KeptHome.purge_after <= now)):
            with self.session_factory.begin() as db:
                if homes.purge(db, row.id, now):
                    log.info("kept home %d purged: its grace period ended", row.id)

    def _clean_up(self, report: CycleReport) -> None:
        """Remove what the provider still holds of failed machines (retried each cycle)."""
        for machine_id in self._ids([State.ERROR], Machine.cleanup_pending.is_(True)):
            with self.claims.hold(machine_id) as mine:
                if mine and self._delete_at_provider(machine_id, "clean-up"):
                    self._record(machine_id, [State.ERROR], _cleaned_up)

    def _delete_at_provider(self, machine_id: str, action: str) -> bool:
        """Delete the machine at the provider (no transaction open); False if it failed."""
        try:
            self.provider.delete(machine_id)
        except ProviderError as exc:  # retried next cycle
            log.warning("%s of %s failed, will retry: %s", action, machine_id, exc.log_message)
            return False
        return True

    def _fail(self, db: Session, machine: Machine, reason: str, log_message: str = "") -> bool:
        """Move the machine to error with ``reason``; the clean-up phase removes what the
        provider holds of it. Returns True."""
        log.warning("machine %s failed: %s", machine.id, log_message or reason)
        transition(db, machine, State.ERROR, reason)
        machine.cleanup_pending = True
        return True

    def _record_failure(self, machine_id: str, states: Iterable[State], reason: str,
                        log_message: str) -> None:
        """Record that a provider call failed the machine, if it is still in ``states``."""
        self._record(machine_id, states,
                     lambda db, machine: self._fail(db, machine, reason, log_message))


#: Without a browser request for this long, a user has left the portal's pages: a machine
#: becoming ready is then told by e-mail.
AWAY_AFTER = timedelta(minutes=2)
#: How often the idle stop looks at the ready machines (seconds).
IDLE_CHECK_SECONDS = 60.0


class _AutocommitReads:
    """Reads on one connection kept in autocommit (opened on first use, and again once after
    a failure, e.g. a restarted server). On SQLite the connection comes from an engine of its
    own, without the worker's ``BEGIN IMMEDIATE``."""

    def __init__(self, engine: Engine) -> None:
        self.connection = AutocommitConnection(
            engine if engine.dialect.name != "sqlite" else make_engine(
                engine.url.render_as_string(hide_password=False)))

    def rows(self, query: Executable) -> Sequence[Row[Any]]:
        """Return the query's rows. Raises the database's error when it fails twice."""
        return self.connection.run(lambda connection: connection.execute(query).all())


def _idle_since(db: Session, machine: Machine) -> datetime:
    """Return since when ``machine`` is idle, read again with its activity row."""
    activity = db.get(MachineActivity, machine.id)
    busy = busy_until(activity.keep_running_until, activity.vm_active_at) if activity else None
    return idle_since(machine.state_changed_at, machine.desktop_seen_at, busy)


def _set_address(db: Session, machine: Machine, address: dict[str, Any]) -> bool:
    """Record where ``machine`` is reachable, if it changed; True if it was written."""
    if machine.address == address:
        return False
    machine.address = address
    return True


def _cleaned_up(db: Session, machine: Machine) -> bool:
    machine.cleanup_pending = False
    return True


def started_again(machine: Machine) -> datetime | None:
    """Return when the machine was last asked to start again after a stop, or None if never."""
    return next((e.at for e in reversed(machine.events)
                 if e.from_state == State.STOPPED.value
                 and e.to_state == State.PROVISIONING.value), None)
