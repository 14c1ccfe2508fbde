"""Capacity for administrators: per flavour and GPU type, what is used and free now, and an
estimate of when room frees up ("next free") from the lifetimes of running machines.

Used is counted from the machines holding resources at the provider (provisioning,
contextualising, ready, stopping) and the site's ``flavor_sizes``. Free now is the capacity
the reconciler last read (:mod:`daaas.portal.machines.capacity`; the provider is never asked
from a page). The provider reports free desktop slots and free GPUs in all, not per GPU model
or flavour, so a flavour's "fits now" is how many more of it those figures allow, and a GPU
model's "free" is the provider's figure when the site has one GPU model (unknown per model
when it has several).

Next free (:func:`next_free`): a running machine is assumed to hold its resources until its
``expires_at`` (the lifetime policy deletes it then); machines are taken in order of expiry,
each freeing its flavour's GPUs (of its model) or one slot, until enough is free for one
more machine of the flavour. That is an upper bound for the policy as it stands: machines
stopped or deleted earlier free room sooner, and an extension granted later moves it on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from daaas.portal.admin.schemas import CapacityReport, FlavorCapacity, GpuCapacity
from daaas.portal.admin.service import RUNNING, flavor_size
from daaas.portal.config import Settings
from daaas.portal.machines.capacity import capacity_path, describe_flavors, read_capacity
from daaas.portal.machines.models import Machine

#: How the page and the API say "next free" was computed.
METHOD = ("Free now is the capacity the reconciler last read from the provider. Next free "
          "assumes every running machine (provisioning, contextualising, ready, stopping) "
          "holds its cores and GPUs until its current expiry (expires_at, when the lifetime "
          "policy deletes it), and takes them in order of expiry until one more machine of "
          "the flavour fits: an upper bound, since machines stopped or deleted earlier free "
          "room sooner and extensions granted later move it on. The provider reports free "
          "slots and GPUs in all, not per GPU model.")


@dataclass(frozen=True)
class Running:
    """One running machine as the estimate sees it."""

    flavor: str
    gpus: int
    gpu_model: str
    expires_at: datetime


def next_free(running: list[Running], now: datetime, *, slots_free: int | None,
              gpus_free: int | None, gpus: int, gpu_model: str) -> datetime | None:
    """Return when one more machine needing ``gpus`` GPUs of ``gpu_model`` (0: none) and one
    slot is estimated to fit: ``now`` when it fits now, else the expiry at which enough
    running machines have ended (in order of expiry); None when the free figures are unknown
    or the running machines never free enough. Pure; raises nothing."""
    if slots_free is None or (gpus and gpus_free is None):
        return None
    slots, free = slots_free, gpus_free or 0
    if slots >= 1 and (not gpus or free >= gpus):
        return now
    for machine in sorted(running, key=lambda m: m.expires_at):
        slots += 1
        if machine.gpu_model == gpu_model:
            free += machine.gpus
        if slots >= 1 and (not gpus or free >= gpus):
            return max(machine.expires_at, now)
    return None


def capacity_report(db: Session, settings: Settings, now: datetime) -> CapacityReport:
    """Return the capacity report (see the module's description) from the reconciler's last
    reading, the running machines and the site's flavour sizes: the one model the page shows
    and the API writes. Raises nothing beyond database errors."""
    sizes = describe_flavors(settings)
    known = read_capacity(capacity_path(settings), now)
    cap = known.capacity if known else None
    rows = db.execute(select(Machine.flavor, Machine.expires_at)
                      .where(Machine.state.in_(RUNNING))).all()
    running = [Running(flavor, size.gpus, size.gpu_model, expires_at)
               for flavor, expires_at in rows for size in [flavor_size(sizes, flavor)]]
    slots_free = cap.sessions_free if cap else None
    gpus_free = cap.gpus_free if cap else None
    names = sorted(set(sizes) | {m.flavor for m in running})
    flavors = []
    for name in names:
        size = flavor_size(sizes, name)
        mine = [m for m in running if m.flavor == name]
        fits: int | None = None
        if slots_free is not None and (not size.gpus or gpus_free is not None):
            fits = slots_free if not size.gpus else min(slots_free, (gpus_free or 0) // size.gpus)
        flavors.append(FlavorCapacity(
            flavor=name, label=size.label if name in sizes else name, gpus=size.gpus,
            gpu_model=size.gpu_model, running=len(mine), vcpus_used=size.cores * len(mine),
            gpus_used=size.gpus * len(mine), fits_now=fits,
            next_free=next_free(running, now, slots_free=slots_free, gpus_free=gpus_free,
                                gpus=size.gpus, gpu_model=size.gpu_model)))
    models = sorted({s.gpu_model for s in sizes.values() if s.gpus} |
                    {m.gpu_model for m in running if m.gpus})
    one_model = len(models) == 1
    gpu_lines = [GpuCapacity(model=model, used=sum(m.gpus for m in running if m.gpu_model == model),
                         free=gpus_free if one_model else None,
                         total=cap.gpus_total if cap and one_model else None,
                         next_free=next_free(running, now, slots_free=slots_free,
                                             gpus_free=gpus_free, gpus=1, gpu_model=model))
                 for model in models]
    return CapacityReport(read_at=known.read_at if known else None, sessions_free=slots_free,
                          sessions_total=cap.sessions_total if cap else None,
                          gpus_free=gpus_free, gpus_total=cap.gpus_total if cap else None,
                          flavors=flavors, gpu_models=gpu_lines, method=METHOD)
