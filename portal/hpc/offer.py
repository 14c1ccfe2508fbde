"""What a user may submit from where: the cluster, partitions and job templates on offer."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.errors import NotFound
from daaas.portal.hpc import site
from daaas.portal.hpc.errors import HpcNotConfigured
from daaas.portal.hpc.job_template import JobTemplate, load_templates
from daaas.portal.hpc.machine import configured
from daaas.portal.hpc.submission import experiment_data_path
from daaas.portal.machines.models import Machine


@dataclass(frozen=True)
class Offer:
    """The Jobs page's and ``GET /api/v1/hpc``'s content for one user and (optional) machine."""

    configured: bool
    cluster: str
    message: str = ""
    machine: Machine | None = None
    partitions: tuple[str, ...] = ()
    templates: tuple[JobTemplate, ...] = ()
    defaults: dict[str, dict[str, str]] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """Return the offer as the API's ``HpcOffer`` object. Raises nothing."""
        machine = None
        if self.machine is not None:
            machine = {"id": self.machine.id, "environment": self.machine.environment_name,
                       "experiment_id": self.machine.experiment_id,
                       "experiment_data_path": experiment_data_path(self.machine)}
        return {"configured": self.configured, "cluster": self.cluster, "message": self.message,
                "machine": machine, "partitions": list(self.partitions),
                "templates": [_template_json(t, self.defaults[t.name]) for t in self.templates]}


def offer(db: Session, settings: Settings, user: User, machine_id: str = "") -> Offer:
    """Return what ``user`` may submit, from the machine ``machine_id`` if given.

    Raises NotFound for a machine that is not the user's.
    """
    if not configured(settings):
        return Offer(False, "", HpcNotConfigured().user_message)
    machine = db.get(Machine, machine_id) if machine_id else None
    if machine_id and (machine is None or machine.user_id != user.id):
        raise NotFound(f"You have no machine '{machine_id}' to submit jobs from.")
    environment = machine.environment_name if machine else None
    templates = tuple(t for t in load_templates(settings.hpc_job_templates_dir).values()
                      if t.offered_on(environment))
    data = experiment_data_path(machine)
    return Offer(True, settings.hpc_cluster, machine=machine,
                 partitions=site.allowed_partitions(
                     settings, machine.environment if machine else None), templates=templates,
                 defaults={t.name: t.defaults(data) for t in templates})


def _template_json(template: JobTemplate, defaults: dict[str, str]) -> dict[str, Any]:
    return {"name": template.name, "title": template.title,
            "description": template.description,
            "parameters": [{"name": p.name, "label": p.label, "help": p.help,
                            "default": defaults[p.name], "pattern": p.pattern}
                           for p in template.parameters]}
