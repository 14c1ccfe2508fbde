"""The reconciler: drives every machine toward its desired state through the provider.

In a launch (docs/architecture.md, "A launch, step by step") it runs step 2, claim (a
requested machine, under a row lock), step 3, context
(:func:`daaas.portal.bootstrap.userdata.launch_user_data`), step 4, provider launch
(:func:`daaas.portal.machines.spec.launch_spec`), and, after the machine phoned home (step 5,
:mod:`daaas.portal.bootstrap.service`), step 6, ready. It also stops, starts, times out,
expires and deletes machines.

Idempotent and crash-safe. The provider knows a machine by the portal's machine id, so a worker
killed between "launch" and "record" simply launches again next cycle and the provider finds
the machine it already has. Each machine is changed in its own short transaction under a row
lock taken with SKIP LOCKED, so several workers on PostgreSQL never act on the same machine at
once. The provider is polled with ONE batched call per cycle for all machines.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session, sessionmaker

from daaas.contextualisation import ContextualisationError
from daaas.portal.bootstrap.service import vm_report
from daaas.portal.bootstrap.userdata import launch_user_data
from daaas.portal.config import Settings
from daaas.portal.db import utcnow
from daaas.portal.machines.capacity import REFRESH_SECONDS, capacity_path, write_capacity
from daaas.portal.machines.models import Machine
from daaas.portal.machines.service import transition
from daaas.portal.machines.spec import launch_spec
from daaas.portal.machines.states import AT_PROVIDER, FINAL, POLLED, STARTING, State
from daaas.portal.providers import (
    CapacityExhausted,
    MachineGone,
    MissingSystemPackages,
    Provider,
    ProviderError,
    ProviderState,
    ProviderStatus,
    ProviderUnavailable,
)

log = logging.getLogger(__name__)
GONE_REASON = ("The machine disappeared at the provider (it was removed or crashed). Delete "
               "it and launch a new one; your storage is kept.")


@dataclass
class CycleReport:
    """What one reconcile cycle did, machine ids per action."""

    launched: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    errored: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    polls: int = 0


class Reconciler:
    """Runs reconcile cycles against one provider."""

    def __init__(self, session_factory: sessionmaker[Session], provider: Provider, *,
                 secret_key: str, ready_timeout_seconds: float,
                 clock: Callable[[], datetime] = utcnow, settings: Settings | None = None) -> None:
        """``settings`` (where VMs reach the portal) is needed by a cloud-init provider only.

        Raises ValueError when the provider uses cloud-init and no settings are given.
        """
        if provider.uses_cloud_init and settings is None:
            raise ValueError(f"the {provider.name} provider uses cloud-init: pass the settings")
        self.session_factory = session_factory
        self.provider = provider
        self.secret_key = secret_key
        self.ready_timeout = ready_timeout_seconds
        self.clock = clock
        self.settings = settings
        #: Where the pages read the provider's capacity (written every REFRESH_SECONDS); only
        #: with settings (a reconciler made without them keeps none).
        self.capacity_file = capacity_path(settings) if settings is not None else None
        self._capacity_read_at: datetime | None = None

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

    def run_once(self) -> CycleReport:
        """Run one cycle: launch (steps 2-4), poll (one call; step 6, ready, and the stops and
        starts it finds asked for), time out, expire, delete, clean up."""
        report = CycleReport()
        self._launch_requested(report)
        self._poll(report)
        self._time_out(report)
        self._expire(report)
        self._delete_requested(report)
        self._clean_up_errors(report)
        self._refresh_capacity()
        return report

    def run_forever(self, stop: threading.Event, interval: float) -> None:
        """Run cycles every ``interval`` seconds until ``stop`` is set; never raises."""
        while not stop.is_set():
            try:
                self.run_once()
            except Exception:  # keep the loop alive; the next cycle retries
                log.exception("reconcile cycle failed")
            stop.wait(interval)

    def _refresh_capacity(self) -> None:
        """Read the provider's capacity for the pages, at most every REFRESH_SECONDS.

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

    # -- a launch: claim (2), context (3) and provider launch (4); ready (6) in the poll ------

    def _ids(self, states: Iterable[State], *extra: ColumnElement[bool]) -> list[str]:
        query = select(Machine.id).where(Machine.state.in_([s.value for s in states]), *extra)
        with self.session_factory() as db:
            return list(db.scalars(query.order_by(Machine.created_at)))

    def _claim(self, db: Session, machine_id: str, states: Iterable[State]) -> Machine | None:
        query = (select(Machine)
                 .where(Machine.id == machine_id, Machine.state.in_([s.value for s in states]))
                 .with_for_update(skip_locked=True))
        return db.scalar(query)

    def _launch_requested(self, report: CycleReport) -> None:
        """Step 2, claim: each requested machine in its own transaction, then steps 3 and 4."""
        for machine_id in self._ids([State.REQUESTED]):
            with self.session_factory.begin() as db:
                machine = self._claim(db, machine_id, [State.REQUESTED])
                if machine is not None and self._launch(db, machine):
                    report.launched.append(machine_id)

    def _launch(self, db: Session, machine: Machine) -> bool:
        """Step 3, context (cloud-init providers only), then step 4, provider launch.

        Returns True when the provider accepted the machine (now provisioning).
        """
        try:
            user_data = None
            if self.provider.uses_cloud_init and self.settings is not None:
                user_data = launch_user_data(db, self.settings, self.secret_key, machine,
                                             self.clock())
            self.provider.launch(launch_spec(self.settings, self.secret_key, machine, user_data))
        except OSError as exc:  # the user's storage could not be prepared on this host
            self._fail(db, machine, "Your storage could not be prepared for this machine; "
                       "contact the facility's support.", f"{machine.id}: {exc}")
            return False
        except (ContextualisationError, MissingSystemPackages) as exc:  # waiting will not help
            self._fail(db, machine, exc.user_message, exc.log_message)
            return False
        except ProviderUnavailable as exc:  # transient: retried until the ready timeout
            log.warning("launch of %s postponed: %s", machine.id, exc.log_message)
            return False
        except ProviderError as exc:
            self._fail(db, machine, exc.user_message, exc.log_message)
            return False
        transition(db, machine, State.PROVISIONING, f"accepted by the {self.provider.name} "
                                                    "provider")
        return True

    def _poll(self, report: CycleReport) -> None:
        ids = self._ids(POLLED)
        if not ids:
            return
        statuses = self.provider.poll(ids)
        report.polls += 1
        for machine_id, status in statuses.items():
            with self.session_factory.begin() as db:
                machine = self._claim(db, machine_id, POLLED)
                if machine is not None and self._apply(db, machine, status):
                    report.changed.append(machine_id)

    def _apply(self, db: Session, machine: Machine, status: ProviderStatus) -> bool:
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
        return machine.state != before.value

    def _apply_running(self, db: Session, machine: Machine, status: ProviderStatus) -> None:
        """Move a machine the provider runs on toward ready."""
        state = State(machine.state)
        if status.state in (ProviderState.RUNNING, ProviderState.READY) \
                and state is State.PROVISIONING:
            transition(db, machine, State.CONTEXTUALISING, "machine is up; setting it up")
            state = State.CONTEXTUALISING
        if state is State.CONTEXTUALISING and self.provider.uses_cloud_init:
            self._apply_vm_report(db, machine)
        elif status.state is ProviderState.READY and state is State.CONTEXTUALISING:
            transition(db, machine, State.READY, "desktop is ready")

    def _apply_vm_report(self, db: Session, machine: Machine) -> None:
        """Step 6, ready: move a contextualising machine on by what it reported, if anything.

        A machine started again after a stop does not set itself up a second time (cloud-init
        runs once per instance): the "ready" it reported on its first boot stands, so it is
        ready again as soon as the cloud runs it.
        """
        report = vm_report(db, machine.id)
        if report is not None and report.status == "ready" and started_again(machine):
            transition(db, machine, State.READY, "running again; it was set up before it was "
                                                 "stopped")
        elif report is not None and report.status == "ready":
            transition(db, machine, State.READY, "the machine reported it is set up")
        elif report is not None:
            self._fail(db, machine, report.user_message, f"{machine.id} reported: {report.reason}")

    # -- stop and start ----------------------------------------------------------------------

    def _apply_stop(self, db: Session, machine: Machine, status: ProviderStatus) -> None:
        """Stop, start or follow a machine when it or the provider's copy is stopped."""
        state, stopped = State(machine.state), status.state is ProviderState.STOPPED
        if state is State.STOPPING and stopped:
            transition(db, machine, State.STOPPED, f"stopped at the {self.provider.name} "
                                                   "provider; its disk is kept")
        elif state is State.STOPPING:
            self._provider_call(db, machine, "stop", lambda: self.provider.stop(machine.id))
        elif state is State.STOPPED and not stopped:
            transition(db, machine, State.PROVISIONING, "started outside the portal (the "
                       f"provider reports it {status.state.value})")
        elif state is State.PROVISIONING:  # the user asked to start it again
            self._provider_call(db, machine, "start",
                                lambda: self.provider.start(
                                    launch_spec(self.settings, self.secret_key, machine)))
        elif state in (State.READY, State.CONTEXTUALISING):
            transition(db, machine, State.STOPPED, "stopped outside the portal ("
                       f"{status.reason or 'by the provider'}), e.g. by an administrator or "
                       "host maintenance; its disk is kept: start it again from its page")

    def _provider_call(self, db: Session, machine: Machine, action: str,
                       call: Callable[[], None]) -> None:
        """Ask the provider to stop or start the machine; retried next cycle when it cannot."""
        try:
            call()
        except MachineGone as exc:
            self._fail(db, machine, GONE_REASON, exc.log_message)
        except CapacityExhausted as exc:  # a start without room: it stays stopped, disk kept
            transition(db, machine, State.STOPPED, f"could not be started: {exc.user_message}")
        except ProviderUnavailable as exc:
            log.warning("%s of %s postponed: %s", action, machine.id, exc.log_message)
        except ProviderError as exc:
            if action == "stop":  # still running: asked again next cycle
                log.warning("stop of %s failed, will retry: %s", machine.id, exc.log_message)
            else:
                self._fail(db, machine, exc.user_message, exc.log_message)
        except OSError as exc:  # the user's storage could not be prepared for a start
            self._fail(db, machine, "Your storage could not be prepared for this machine; "
                       "contact the facility's support.", f"{machine.id}: {exc}")

    # -- time-outs, expiry, deletion, clean-up ---------------------------------------------

    def _time_out(self, report: CycleReport) -> None:
        deadline = self.clock().timestamp() - self.ready_timeout
        for machine_id in self._ids(STARTING):
            with self.session_factory.begin() as db:
                machine = self._claim(db, machine_id, STARTING)
                if machine is None or (started_again(machine)
                                       or machine.created_at).timestamp() > deadline:
                    continue
                minutes = max(1, round(self.ready_timeout / 60))
                self._fail(db, machine, f"The machine did not become ready within {minutes} "
                           "minute(s) and was removed. Try again; if it keeps happening, "
                           "contact the facility's support.", f"{machine.id} timed out in "
                           f"{machine.state}")
                report.errored.append(machine_id)

    def _expire(self, report: CycleReport) -> None:
        for machine_id in self._ids(AT_PROVIDER, Machine.expires_at <= self.clock()):
            with self.session_factory.begin() as db:
                machine = self._claim(db, machine_id, AT_PROVIDER)
                if machine is not None:
                    hours = machine.environment.limits.max_lifetime_hours
                    transition(db, machine, State.DELETING,
                               f"reached its maximum lifetime ({hours} hours)")
                    report.changed.append(machine_id)

    def _delete_requested(self, report: CycleReport) -> None:
        for machine_id in self._ids([State.DELETING]):
            with self.session_factory.begin() as db:
                machine = self._claim(db, machine_id, [State.DELETING])
                if machine is None:
                    continue
                try:
                    self.provider.delete(machine_id)
                except ProviderError as exc:  # retried next cycle
                    log.warning("delete of %s failed: %s", machine_id, exc.log_message)
                    continue
                transition(db, machine, State.DELETED, "removed at the provider")
                report.deleted.append(machine_id)

    def _clean_up_errors(self, report: CycleReport) -> None:
        for machine_id in self._ids([State.ERROR], Machine.cleanup_pending.is_(True)):
            with self.session_factory.begin() as db:
                machine = self._claim(db, machine_id, [State.ERROR])
                if machine is not None:
                    self._remove_at_provider(machine)

    def _fail(self, db: Session, machine: Machine, reason: str, log_message: str = "") -> None:
        """Move the machine to error with ``reason`` and remove what the provider holds."""
        log.warning("machine %s failed: %s", machine.id, log_message or reason)
        transition(db, machine, State.ERROR, reason)
        self._remove_at_provider(machine)

    def _remove_at_provider(self, machine: Machine) -> None:
        try:
            self.provider.delete(machine.id)
            machine.cleanup_pending = False
        except ProviderError as exc:
            log.warning("clean-up of %s failed, will retry: %s", machine.id, exc.log_message)
            machine.cleanup_pending = True


def started_again(machine: Machine) -> datetime | None:
    """Return when the machine was last asked to start again after a stop, or None if never."""
    return next((e.at for e in reversed(machine.events)
                 if e.from_state == State.STOPPED.value
                 and e.to_state == State.PROVISIONING.value), None)
