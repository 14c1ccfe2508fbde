"""JSON API for machines: launch, list, get, stop, start, delete (bodies: :mod:`.schemas`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from daaas.portal.api.schema import dump, parse_body, parse_query
from daaas.portal.auth.current import require_user
from daaas.portal.db import utcnow
from daaas.portal.experiments.binding import experiment_for_launch
from daaas.portal.lifecycle import db
from daaas.portal.machines import activity, extensions, schemas, service
from daaas.portal.machines.models import Machine
from daaas.portal.machines.serialize import machine_json
from daaas.portal.runtime import runtime

blueprint = Blueprint("machines_api", __name__, url_prefix="/api/v1")


@blueprint.post("/machines")
def launch() -> tuple[dict[str, Any], int, dict[str, str]]:
    """Ask for a machine; 202 with the machine in 'requested'.

    With an ``Idempotency-Key`` header the same key again answers 200 with the machine it
    launched (header ``Idempotent-Replayed: true``), 422 when it asked for something else.
    Raises InvalidInput for a body that is not a :class:`~schemas.LaunchRequest` or a bad
    key, and what :func:`service.launch` and :func:`experiment_for_launch` raise.
    """
    rt, user = runtime(), require_user()
    key = service.check_key(request.headers.get(IDEMPOTENCY_KEY))
    body = parse_body(schemas.LaunchRequest)
    experiment = experiment_for_launch(db(), rt, user, body.environment, body.experiment)
    done = service.launch(db(), rt.settings, rt.catalogue, user, body.environment, body.flavor,
                          experiment=experiment, provider=rt.provider, key=key,
                          fingerprint=service.launch_fingerprint(body.environment, body.flavor,
                                                                 body.experiment))
    if done.replayed:
        return reply(done.machine, with_events=True), 200, {"Idempotent-Replayed": "true"}
    return reply(done.machine, with_events=True), 202, {}


#: The request header that makes a launch idempotent.
IDEMPOTENCY_KEY = "Idempotency-Key"


@blueprint.get("/machines")
def list_machines() -> dict[str, Any]:
    """List the user's machines, a page at a time (admins: ``?all=1`` for everyone's)."""
    page = parse_query(schemas.MachineListQuery)
    machines, total = service.list_machines(db(), require_user(), everyone=page.all,
                                            limit=page.limit, offset=page.offset)
    return dump(schemas.MachineList(machines=[schemas.Machine.model_validate(machine_json(m))
                                              for m in machines],
                                    total=total, limit=page.limit, offset=page.offset))


def reply(machine: Machine, *, with_events: bool = False) -> dict[str, Any]:
    """Return ``machine`` as the API's :class:`~schemas.Machine` (its events if asked).

    Raises pydantic.ValidationError when :func:`machine_json` writes what the model does not
    declare (a bug: the document would lie).
    """
    return dump(schemas.Machine.model_validate(machine_json(machine, with_events=with_events)))


@blueprint.get("/machines/<machine_id>")
def get_machine(machine_id: str) -> dict[str, Any]:
    """Return one machine with its events."""
    return reply(service.get_machine(db(), require_user(), machine_id), with_events=True)


@blueprint.patch("/machines/<machine_id>")
def rename_machine(machine_id: str) -> dict[str, Any]:
    """Rename the user's machine; 200 with the machine.

    Raises InvalidInput for a body that is not a :class:`~schemas.RenameRequest` or a name
    :func:`service.rename_machine` refuses, and what it raises (NotFound, Forbidden, Conflict).
    """
    body = parse_body(schemas.RenameRequest)
    return reply(service.rename_machine(db(), require_user(), machine_id, body.name),
                 with_events=True)


@blueprint.delete("/machines/<machine_id>")
def delete_machine(machine_id: str) -> tuple[dict[str, Any], int]:
    """Ask for the machine to be deleted; 202 with the machine in 'deleting'."""
    machine = service.request_delete(db(), require_user(), machine_id)
    return reply(machine, with_events=True), 202


@blueprint.post("/machines/<machine_id>/stop")
def stop_machine(machine_id: str) -> tuple[dict[str, Any], int]:
    """Ask for the ready machine to be stopped; 202 with the machine in 'stopping'."""
    machine = service.request_stop(db(), require_user(), machine_id, runtime().provider)
    return reply(machine, with_events=True), 202


@blueprint.post("/machines/<machine_id>/start")
def start_machine(machine_id: str) -> tuple[dict[str, Any], int]:
    """Ask for the stopped machine to be started; 202 with the machine in 'provisioning'."""
    machine = service.request_start(db(), require_user(), machine_id,
                                    runtime().provider, runtime().settings)
    return reply(machine, with_events=True), 202


@blueprint.post("/machines/<machine_id>/extend")
def extend_machine(machine_id: str) -> tuple[dict[str, Any], int]:
    """Extend the user's machine by one step of its lifetime policy: 200 with the machine
    (its new ``expires_at``), or 202 when the policy needs an administrator's approval (the
    request waits; ``lifetime.extension_pending``). Raises what :func:`extensions.extend`
    raises: Forbidden (403) when the environment allows no extension, Conflict (409) past
    the policy's maximum or for a machine that is not running."""
    user = require_user()
    machine = service.get_machine(db(), user, machine_id, lock=True)
    done = extensions.extend(db(), user, machine)
    return reply(done.machine, with_events=True), 202 if done.pending is not None else 200


@blueprint.post("/machines/<machine_id>/keep-running")
def keep_running(machine_id: str) -> dict[str, Any]:
    """Keep the user's ready machine running ``{"hours": h}`` from now whatever its desktop
    connections (0: no longer); 200 with the machine (``lifetime.keep_running_until``).
    Raises what :func:`activity.keep_running` raises: InvalidInput (400) past the limit,
    Forbidden (403) when not offered, Conflict (409) unless ready."""
    hours = parse_body(schemas.KeepRunningRequest).hours
    user, now = require_user(), utcnow()
    machine = service.get_machine(db(), user, machine_id, lock=True)
    activity.keep_running(db(), runtime().settings, user, machine,
                          activity.hours_from(now, hours), now)
    return reply(machine, with_events=True)
