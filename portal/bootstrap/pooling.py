"""The bootstrap exchange of a warm pool's cloud machine (issue 20): its phases, and the claim
its agent asks for.

A pooled machine's agent trades its pool bootstrap token for a report token and nothing else
(:func:`daaas.portal.bootstrap.service.exchange`), sets up what needs no user, reports
``pooled-ready`` and then asks ``POST /api/v1/context/<machine>/claim`` with that report token
until a launch has claimed the machine and the worker has handed it over
(``personalised_at``). The first such request after the hand-over gets the claimer's session
and secrets (:func:`take_claim`), once: the same conditional UPDATE that hands them out
replaces the report token, so the answer cannot be fetched twice and the machine's final
``ready`` can only be signed by the agent that received it.

The phases are read from the ``machine_contexts`` row alone (:func:`phase`): the claim's
answer sets ``used_at`` again, after the ``pooled-ready`` report's ``reported_at``. The rules
are pure functions (:func:`phase`, :func:`claim_step`, :func:`may_record`), tested on their own.
"""

from __future__ import annotations

import enum
import hmac
import logging
import secrets
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, update
from sqlalchemy.orm import Session

from daaas.portal.bootstrap.models import MachineContext
from daaas.portal.errors import Forbidden
from daaas.portal.machines.models import Machine
from daaas.portal.machines.secrets import token_digest
from daaas.portal.machines.states import State

log = logging.getLogger(__name__)

#: What a pooled machine's agent reports once it is set up as far as it can be without a user
POOLED_READY = "pooled-ready"
#: How long the agent waits between two claim requests while its machine is in the pool
#: (seconds, sent as ``Retry-After``): the web server's threads are never held by a pool
POLL_SECONDS = 1
#: How long one claim request is held once the machine is claimed but not yet handed over
#: (the worker's hand-over follows the claim within a cycle): seconds
HOLD_SECONDS = 5.0
#: The phases are ordered by time: a step is recorded at least this long after the one before
#: (web hosts' clocks may differ a little; :func:`phase` must not see a claim taken before it)
TICK = timedelta(microseconds=1)
REFUSED = ("This machine's claim request is not signed with its report token, or the machine "
           "is not a warm pool's machine waiting for its user.")


class Phase(enum.Enum):
    """Where a pooled machine's exchange is."""

    BOOTING = "booting"      # the pool bootstrap token not used yet
    SETTING_UP = "setting-up"  # traded; the agent sets up what needs no user
    WAITING = "waiting"      # reported pooled-ready: in the pool, or claimed and not yet taken
    TAKEN = "taken"          # the claimer's answer was handed to the agent
    REPORTED = "reported"    # the final ready or failed report


class ClaimStep(enum.Enum):
    """What a claim request gets now."""

    WAIT = "wait"    # still in the pool: answer 204 at once, the agent asks again later
    SOON = "soon"    # claimed, the worker has not handed it over yet: hold the request
    TAKE = "take"    # handed over: the claimer's answer, once


def phase(used_at: datetime | None, reported_status: str | None,
          reported_at: datetime | None) -> Phase:
    """Return the phase of a pooled machine's exchange from its ``machine_contexts`` row.
    Raises nothing."""
    if reported_status in ("ready", "failed"):
        return Phase.REPORTED
    if used_at is None:
        return Phase.BOOTING
    if reported_status != POOLED_READY or reported_at is None:
        return Phase.SETTING_UP
    return Phase.TAKEN if used_at > reported_at else Phase.WAITING


def claim_step(pooled: bool, claimed_at: datetime | None,
               personalised_at: datetime | None) -> ClaimStep:
    """Return what a claim request of a machine in :attr:`Phase.WAITING` gets: ``pooled``
    while it waits in its pool, ``claimed_at`` set by the launch that took it,
    ``personalised_at`` by the worker's hand-over. Raises nothing."""
    if pooled or claimed_at is None:
        return ClaimStep.WAIT
    return ClaimStep.TAKE if personalised_at is not None else ClaimStep.SOON


def may_record(pooled: bool, current: Phase, status: str) -> bool:
    """Return whether a report of ``status`` may be recorded for a machine whose exchange is
    in ``current`` (``pooled``: still in its pool). ``pooled-ready`` only from a pooled
    machine that has traded its token; ``ready`` of a pool's machine only after its claimer's
    answer was taken (before, it would skip the user's set-up); ``failed`` at any time.
    Raises nothing."""
    if status == POOLED_READY:
        return pooled and current is Phase.SETTING_UP
    if status == "ready":
        return not pooled and current is Phase.TAKEN
    return current is not Phase.REPORTED


def take_claim(db: Session, machine_id: str, bearer: str,
               now: datetime) -> tuple[ClaimStep, Machine | None, str]:
    """Answer one claim request of a pooled machine's agent signed with ``bearer`` (its
    pool-phase report token): returns the step and, for :attr:`ClaimStep.TAKE`, the machine
    (now the claimer's) and its new report token, the row updated in the caller's
    transaction so no other request takes it. Raises Forbidden (nothing changed) for an
    unknown machine, a token that does not fit, a machine not waiting (never pooled, its
    answer already taken, deleted or failed)."""
    row = db.get(MachineContext, machine_id)
    machine = db.get(Machine, machine_id)
    sent = token_digest(bearer)
    if row is None or machine is None or row.report_token_hash is None \
            or not hmac.compare_digest(row.report_token_hash, sent):
        raise Forbidden(REFUSED, f"claim request for {machine_id} refused: bad token")
    current = phase(row.used_at, row.reported_status, row.reported_at)
    live = machine.state in (State.READY.value, State.CONTEXTUALISING.value) \
        and not machine.cleanup_pending
    if current is not Phase.WAITING or not live:
        raise Forbidden(REFUSED, f"claim request for {machine_id} refused: exchange "
                                 f"{current.value}, machine {machine.state}")
    step = claim_step(machine.pool is not None, machine.claimed_at, machine.personalised_at)
    if step is not ClaimStep.TAKE:
        return step, None, ""
    report_token = secrets.token_urlsafe(32)
    assert row.reported_at is not None  # Phase.WAITING
    taken = db.execute(
        update(MachineContext)
        .where(MachineContext.machine_id == machine_id, MachineContext.report_token_hash == sent)
        .values(used_at=max(now, row.reported_at + TICK),  # after it, whatever the clocks say
                report_token_hash=token_digest(report_token))
        .execution_options(synchronize_session=False))
    if cast(CursorResult[Any], taken).rowcount != 1:
        raise Forbidden(REFUSED, f"claim request for {machine_id} refused: taken meanwhile")
    log.info("machine %s took its claim for %s", machine_id, machine.user.username)
    return step, machine, report_token
