"""Machines as JSON for the API and the live machine list."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from flask import g, url_for
from sqlalchemy import select

from daaas.portal.db import utcnow
from daaas.portal.lifecycle import db
from daaas.portal.machines.activity import MachineActivity, busy_until, keep_running_limit
from daaas.portal.machines.extensions import PENDING, ExtensionRequest, machine_policy
from daaas.portal.machines.lifetime import extension_target, idle_since, latest_end
from daaas.portal.machines.models import Machine
from daaas.portal.machines.naming import experiment_on_desktop, size_label, storage_on_desktop
from daaas.portal.machines.timings import phase_timings
from daaas.portal.runtime import runtime

#: A machine's links by name: the endpoint each is built from (with ``machine_id``).
LINKS = {"page": "machines.page", "desktop": "access.desktop", "rdp": "access.rdp",
         "stop": "machines_api.stop_machine", "start": "machines_api.start_machine",
         "rename": "machines_api.rename_machine", "extend": "machines_api.extend_machine"}
PLACEHOLDER = "MACHINE-ID"


def _link_templates() -> dict[str, str]:
    """Return each link with :data:`PLACEHOLDER` for the machine id, built once per request
    (``url_for`` per machine and link was a quarter of a list's time)."""
    if "machine_link_templates" not in g:
        g.machine_link_templates = {name: url_for(endpoint, machine_id=PLACEHOLDER)
                                    for name, endpoint in LINKS.items()}
    templates: dict[str, str] = g.machine_link_templates
    return templates


def _pending_extensions() -> set[str]:
    """Return the ids of machines with an extension request waiting for an administrator,
    read once per request (they are few), so a list costs one query more, not one per
    machine."""
    if "pending_extensions" not in g:
        g.pending_extensions = set(db().scalars(select(ExtensionRequest.machine_id).where(
            ExtensionRequest.status == PENDING)))
    pending: set[str] = g.pending_extensions
    return pending


def _activity() -> dict[str, tuple[datetime | None, datetime | None]]:
    """Return each machine's "keep running until" and last active agent report, read once
    per request (rows exist only for machines with such a signal)."""
    if "machine_activity" not in g:
        g.machine_activity = {
            row.machine_id: (row.keep_running_until, row.vm_active_at)
            for row in db().execute(select(MachineActivity.machine_id,
                                           MachineActivity.keep_running_until,
                                           MachineActivity.vm_active_at))}
    found: dict[str, tuple[datetime | None, datetime | None]] = g.machine_activity
    return found


def lifetime_json(machine: Machine) -> dict[str, Any]:
    """Return the machine's lifetime: its end, the latest its policy allows, how it is
    extended and whether it can be now. Raises nothing."""
    rt = runtime()
    policy = machine_policy(machine)
    target = extension_target(machine.created_at, machine.expires_at, policy)
    idle_stop_at = None
    keep_until, active_at = _activity().get(machine.id, (None, None))
    now = utcnow()
    if keep_until is not None and keep_until <= now:
        keep_until = None
    if machine.state == "ready" and rt.settings.idle_stop and rt.provider.supports_stop:
        idle_stop_at = (idle_since(machine.state_changed_at, machine.desktop_seen_at,
                                   busy_until(keep_until, active_at))
                        + timedelta(minutes=machine.environment.limits.idle_timeout_minutes))
    limit = keep_running_limit(rt.settings, machine, now) if machine.state == "ready" else None
    alive = machine.state in ("provisioning", "contextualising", "ready", "stopping", "stopped")
    return {"expires_at": machine.expires_at.isoformat(),
            "latest_end": latest_end(machine.created_at, policy).isoformat(),
            "extension": policy.extension,
            "extension_hours": policy.step.total_seconds() / 3600,
            "can_extend": alive and policy.extension != "none" and target is not None,
            "extension_pending": machine.id in _pending_extensions(),
            "idle_stop_at": idle_stop_at.isoformat() if idle_stop_at else None,
            "keep_running_until": keep_until.isoformat() if keep_until else None,
            # whole minutes: a value new every request would change the polled list's ETag
            "keep_running_limit": limit.replace(second=0, microsecond=0).isoformat()
            if limit else None}


def machine_json(machine: Machine, *, with_events: bool = False) -> dict[str, Any]:
    """Return the machine's public fields, phase timings and links (events if asked)."""
    rt = runtime()
    visit = str(machine.experiment.get("visit_id", "")) if machine.experiment else ""
    body: dict[str, Any] = {
        "id": machine.id,
        "name": machine.name,
        "owner": machine.user.username,
        "environment": {"name": machine.environment_name,
                        "title": machine.environment.title},
        "flavor": machine.flavor,
        "size": size_label(rt.settings, machine.flavor),
        "state": machine.state,
        "error_reason": machine.error_reason,
        "admin_reason": machine.admin_reason,
        "created_at": machine.created_at.isoformat(),
        "state_changed_at": machine.state_changed_at.isoformat(),
        "expires_at": machine.expires_at.isoformat(),
        "lifetime": lifetime_json(machine),
        "phases": phase_timings(machine).as_dict(),
        "experiment": machine.experiment,
        "folders": {"storage": storage_on_desktop(rt.settings, machine.provider),
                    "experiment": experiment_on_desktop(rt.settings, machine.provider, visit)
                    if visit else None},
        "can_stop": rt.provider.supports_stop,
        "links": {name: link.replace(PLACEHOLDER, machine.id)
                  for name, link in _link_templates().items()},
    }
    if with_events:
        body["events"] = [{"from": e.from_state, "to": e.to_state, "at": e.at.isoformat(),
                           "message": e.message} for e in machine.events]
    return body
