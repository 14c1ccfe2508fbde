"""Launch step 5, phone home: the machine trades its bootstrap token once for its secrets,
then reports whether it set itself up; the reconciler reads that report (step 6, ready).

The token was minted in step 3, context (:func:`daaas.portal.bootstrap.userdata.launch_user_data`).
The contract with the VM's agent is contextualisation/BOOTSTRAP_PROTOCOL.md. Tokens are stored
as SHA-256 digests only; the secrets handed over are derived from the portal's secret key
(:mod:`daaas.portal.machines.secrets`), so none is stored at all.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, cast

from sqlalchemy import ColumnElement, CursorResult, select, update
from sqlalchemy.orm import Session

from daaas.contextualisation.builder import access_services
from daaas.contextualisation.files import one_line
from daaas.contextualisation.pool import claimed_session
from daaas.portal.access.signin import verifier_settings
from daaas.portal.bootstrap.models import MachineContext
from daaas.portal.bootstrap.pooling import POOLED_READY, TICK, may_record, phase
from daaas.portal.bootstrap.userdata import build_context
from daaas.portal.config import Settings, resolve_secret_key
from daaas.portal.errors import Conflict, Forbidden
from daaas.portal.hpc.machine import secret_files
from daaas.portal.machines.models import Machine
from daaas.portal.machines.mounts import exchange_mounts, experiment_mounts, export_rule
from daaas.portal.machines.secrets import bootstrap_token, token_digest, vnc_password
from daaas.portal.machines.states import AT_PROVIDER, STARTING
from daaas.portal.machines.wakeup import ask_the_worker
from daaas.portal.sshkeys.service import authorized_keys
from daaas.portal.storage.service import machine_mounts
from daaas.portal.storage.service import secret_files as storage_secret_files

log = logging.getLogger(__name__)
#: The longest failure reason kept from a machine's report (characters, one line).
MAX_REASON = 500
Status = Literal["ready", "failed", "pooled-ready"]
REFUSED = ("This machine's bootstrap token is wrong, already used or expired, or the machine is "
           "being removed. A token works once only: delete the machine and launch a new one.")
REPORT_REFUSED = ("This status report is not signed with the machine's report token (or its "
                  "bootstrap token), so it was ignored.")


@dataclass(frozen=True)
class VmReport:
    """What a machine reported about setting itself up."""

    status: Status
    reason: str

    @property
    def user_message(self) -> str:
        """Return the error shown to the user for a failed set-up. Raises nothing."""
        return (f"The machine could not set itself up: {self.reason or 'no reason given'}. "
                "Delete it and launch a new one; if it happens again, contact the facility's "
                "support with this message.")


def exchange(db: Session, settings: Settings, machine_id: str, token: str,
             now: datetime) -> dict[str, Any]:
    """Trade the bootstrap token for the machine's secrets, once; return the protocol's answer.

    The token is consumed by one conditional UPDATE (unused, unexpired, machine still starting),
    so two racing requests cannot both succeed. Raises Forbidden and changes nothing for an
    unknown machine, a wrong, used or expired token, or a machine no longer starting; raises
    StorageUnavailable (503, nothing consumed: the agent retries) while the storage key cannot
    be read.
    """
    report_token = secrets.token_urlsafe(32)
    consumed = db.execute(
        update(MachineContext)
        .where(MachineContext.machine_id == machine_id,
               MachineContext.token_hash == token_digest(token),
               MachineContext.used_at.is_(None), MachineContext.expires_at > now,
               MachineContext.machine_id.in_(select(Machine.id).where(
                   Machine.state.in_([state.value for state in STARTING]))))
        .values(used_at=now, report_token_hash=token_digest(report_token))
        .execution_options(synchronize_session=False))
    if cast(CursorResult[Any], consumed).rowcount != 1:
        raise Forbidden(REFUSED, f"bootstrap of {machine_id} refused: "
                                 f"{_why_refused(db, machine_id, token, now)}")
    machine = db.get(Machine, machine_id)
    assert machine is not None  # the UPDATE found it
    log.info("machine %s traded its bootstrap token", machine_id)
    if machine.pool is not None:  # a warm pool's machine: nothing of anyone until its claim
        return {"pooled": True, "report_token": report_token, "files": []}
    return session_answer(db, settings, machine, report_token, now)


def session_answer(db: Session, settings: Settings, machine: Machine, report_token: str,
                   now: datetime) -> dict[str, Any]:
    """Return the exchange's answer for ``machine``'s owner: the secrets, the files (Slurm
    JWT, storage key), SSH keys, RDP verifier and experiment data mounts. Raises
    StorageUnavailable or StorageError when the storage key cannot be read."""
    answer = machine_secrets(resolve_secret_key(settings), machine, report_token)
    answer["files"] += secret_files(settings, machine, now)  # the user's Slurm JWT, if any
    answer["files"] += storage_secret_files(  # the storage key (CephFS), if any
        settings, machine.user, machine.id, _live_machines(db, machine))
    answer.update(access_and_data(db, settings, machine))
    return answer


def claim_answer(db: Session, settings: Settings, machine: Machine, report_token: str,
                 now: datetime) -> dict[str, Any]:
    """Return the answer to a pooled machine's claim request once its claimer's context was
    taken (:func:`daaas.portal.bootstrap.pooling.take_claim`): :func:`session_answer` plus the
    ``session`` (:func:`daaas.contextualisation.pool.claimed_session`: the account, where the
    secrets go, the storage mounts, the access services). Raises ContextualisationError when
    the claimer's Context cannot be built, OSError or a storage error when their storage
    cannot be prepared."""
    token = bootstrap_token(resolve_secret_key(settings), machine.id)
    mounts = machine_mounts(settings, machine.user, machine.id)
    context = build_context(settings, machine.user, machine.id, machine.environment, token,
                            mounts)
    answer = session_answer(db, settings, machine, report_token, now)
    answer["session"] = claimed_session(context)
    return answer


def access_and_data(db: Session, settings: Settings, machine: Machine) -> dict[str, Any]:
    """Return the exchange's SSH keys (when the machine offers SSH), the RDP sign-in verifier's
    settings (when it offers RDP) and the experiment data mounts (read-only). Raises nothing."""
    home = f"/home/{machine.user.username}"
    mounts = experiment_mounts(export_rule(settings), machine.experiment, home)
    answer: dict[str, Any] = {"mounts": exchange_mounts(mounts)}
    if access_services(machine.environment).ssh:
        answer["ssh_authorized_keys"] = authorized_keys(db, machine.user)
    verifier = verifier_settings(resolve_secret_key(settings), machine)
    if verifier is not None:
        answer["rdp_sign_in"] = verifier
    return answer


def _live_machines(db: Session, machine: Machine) -> frozenset[str]:
    """Return the ids of the user's machines the cloud may hold (their storage grants stay)."""
    return frozenset(db.scalars(select(Machine.id).where(
        Machine.user_id == machine.user_id,
        Machine.state.in_([state.value for state in AT_PROVIDER | STARTING]))))


def machine_secrets(secret_key: str, machine: Machine, report_token: str) -> dict[str, Any]:
    """Return the exchange's answer: the VNC password when the machine runs VNC (RDP signs
    in with one-time tokens, so no login password is sent).

    Raises nothing.
    """
    access = access_services(machine.environment)
    answer: dict[str, Any] = {"report_token": report_token, "files": []}
    if access.vnc:
        answer["vnc_password"] = vnc_password(secret_key, machine.id)
    return answer


def _why_refused(db: Session, machine_id: str, token: str, now: datetime) -> str:
    """Return why a token was refused, for the log only. Raises nothing."""
    row = db.get(MachineContext, machine_id)
    machine = db.get(Machine, machine_id)
    if row is None or machine is None:
        return "no such machine, or it was not launched with cloud-init"
    if not hmac.compare_digest(row.token_hash, token_digest(token)):
        return "wrong token"
    if row.used_at is not None:
        return f"token already used at {row.used_at.isoformat()}"
    if row.expires_at <= now:
        return f"token expired at {row.expires_at.isoformat()}"
    return f"machine is {machine.state}"


def record_report(db: Session, machine_id: str, bearer: str, status: Status, reason: str,
                  now: datetime) -> None:
    """Record the machine's one status report for the reconciler to apply.

    ``bearer`` is the report token, or the bootstrap token before the exchange (and, for a
    ``failed`` report, after it: the agent uses it when the exchange's answer never reached it).
    Repeating the same report is accepted and changes nothing. Raises Forbidden (nothing
    changed) for a token that does not fit, Conflict for a report contradicting an earlier one.
    """
    row = db.get(MachineContext, machine_id)
    if row is None or not _may_report(row, token_digest(bearer), status):
        raise Forbidden(REPORT_REFUSED, f"status report for {machine_id} refused: bad token")
    text = one_line(reason)[:MAX_REASON] if status == "failed" else ""
    # a warm pool's machine reports twice: pooled-ready in its pool, then ready as its user's
    open_: ColumnElement[bool] = MachineContext.reported_status.is_(None)
    kind = db.execute(select(Machine.pool, Machine.claimed_at)
                      .where(Machine.id == machine_id)).one_or_none()
    if status == POOLED_READY or (kind is not None and (kind.pool or kind.claimed_at)):
        pooled = kind is not None and kind.pool is not None
        if may_record(pooled, phase(row.used_at, row.reported_status, row.reported_at), status):
            open_ = MachineContext.reported_status == row.reported_status \
                if row.reported_status else open_
        elif row.reported_status != status:
            raise Conflict("This report does not fit where the machine's set-up is.",
                           f"{machine_id} reported {status} after "
                           f"{row.reported_status or 'nothing'} (pooled: {pooled})")
    if status == POOLED_READY and row.used_at is not None:  # after the exchange, whatever
        now = max(now, row.used_at + TICK)  # the web hosts' clocks say (pooling.phase)
    recorded = db.execute(
        update(MachineContext)
        .where(MachineContext.machine_id == machine_id, open_)
        .values(reported_status=status, reported_reason=text, reported_at=now)
        .execution_options(synchronize_session=False))
    if cast(CursorResult[Any], recorded).rowcount == 1:
        log.info("machine %s reported %s %s", machine_id, status, text)
        ask_the_worker(db)  # step 6 at once, not at the next cycle
        return
    db.refresh(row)
    if row.reported_status != status:
        raise Conflict(f"This machine already reported '{row.reported_status}'.",
                       f"{machine_id} reported {status} after {row.reported_status}")


def _may_report(row: MachineContext, sent: str, status: Status) -> bool:
    if row.report_token_hash and hmac.compare_digest(row.report_token_hash, sent):
        return True
    by_bootstrap_token = hmac.compare_digest(row.token_hash, sent)
    return by_bootstrap_token and (row.report_token_hash is None or status == "failed")


def vm_report(db: Session, machine_id: str) -> VmReport | None:
    """Return what the machine reported, or None if it has not reported yet. Raises nothing."""
    row = db.execute(select(MachineContext.reported_status, MachineContext.reported_reason)
                     .where(MachineContext.machine_id == machine_id)).one_or_none()
    if row is None or row.reported_status not in ("ready", "failed", POOLED_READY):
        return None
    return VmReport(cast(Status, row.reported_status), row.reported_reason)
