"""What a user asks to run, checked and turned into a JobSpec (script or template)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.errors import InvalidInput
from daaas.portal.hpc import site
from daaas.portal.hpc.backend import JobSpec
from daaas.portal.hpc.job_template import get_template
from daaas.portal.hpc.slurm_jobs import DEFAULT_PATH
from daaas.portal.machines.models import Machine

MAX_SCRIPT = 64 * 1024
DEFAULT_NAME = "daaas-job"


@dataclass(frozen=True)
class Submission:
    """A submission request as sent by the form or the API, before any checks."""

    script: str = ""
    template: str = ""
    parameters: dict[str, str] = field(default_factory=dict)
    name: str = ""
    partition: str = ""
    time_limit_minutes: int | None = None
    cpus: int | None = None
    machine_id: str = ""


def from_mapping(data: Mapping[str, Any], parameters: Mapping[str, Any]) -> Submission:
    """Return a Submission from form or JSON fields (``parameters`` kept apart).

    Raises InvalidInput naming a field of the wrong type.
    """
    text = {key: _text(data, key) for key in ("script", "template", "name", "partition",
                                              "machine_id")}
    return Submission(**text, parameters={str(k): _plain(k, v) for k, v in parameters.items()},
                      time_limit_minutes=_number(data, "time_limit_minutes", 1, 525600),
                      cpus=_number(data, "cpus", 1, 1024))


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InvalidInput(f"'{key}' must be text.")
    return value.replace("\r\n", "\n") if key == "script" else value.strip()


def _plain(key: object, value: object) -> str:
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise InvalidInput(f"Parameter '{key}' must be text or a number.")
    return str(value)


def _number(data: Mapping[str, Any], key: str, low: int, high: int) -> int | None:
    value = data.get(key)
    if value in (None, ""):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput(f"'{key}' must be a whole number from {low} to {high}.")
    return value


def job_spec(settings: Settings, user: User, machine: Machine | None,
             request: Submission) -> JobSpec:
    """Return the JobSpec for a request: the partition checked, the script written out.

    Raises InvalidInput (no or a bad script, bad parameters), NotFound (unknown template) and
    PartitionNotAllowed.
    """
    partition = site.check_partition(settings, machine.environment if machine else None,
                                     request.partition)
    folder = site.work_dir(settings, user.username)
    script, name, limit, cpus = _script(settings, user, machine, request, folder)
    env = {"PATH": DEFAULT_PATH, "USER": user.username, "DAAAS_WORK_DIR": folder,
           "DAAAS_MACHINE_ID": machine.id if machine else ""}
    return JobSpec(name=request.name or name, script=script, work_dir=folder,
                   output_path=f"{folder}/daaas-job-%j.out", partition=partition,
                   time_limit_minutes=request.time_limit_minutes or limit,
                   cpus=request.cpus or cpus, environment=env)


def _script(settings: Settings, user: User, machine: Machine | None, request: Submission,
            folder: str) -> tuple[str, str, int | None, int]:
    if request.template:
        environment = machine.environment_name if machine else None
        template = get_template(settings.hpc_job_templates_dir, request.template, environment)
        context = {"username": user.username, "work_dir": folder,
                   "experiment_data_path": experiment_data_path(machine)}
        script = template.render(request.parameters, context)
        return script, template.name, template.time_limit_minutes, template.cpus
    if not request.script.strip():
        raise InvalidInput("Write a batch script, or choose a job template.")
    if not request.script.startswith("#!") or len(request.script) > MAX_SCRIPT:
        raise InvalidInput("A batch script must start with a line like '#!/bin/bash' and be at "
                           f"most {MAX_SCRIPT // 1024} KiB.")
    return request.script, DEFAULT_NAME, None, 1


def experiment_data_path(machine: Machine | None) -> str:
    """Return the data folder of the machine's experiment, or "" without one. Raises nothing."""
    record = machine.experiment if machine is not None else None
    return str(record.get("data_path") or "") if isinstance(record, dict) else ""
