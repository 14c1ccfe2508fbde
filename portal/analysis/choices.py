"""Honest choices on the Analysis cards: what each size is, what cannot start here, and why.

Everything here is cheap on a page view: the sizes come from the ``flavor_sizes`` setting,
GPU room from the capacity the reconciler last read (:mod:`daaas.portal.machines.capacity`),
an environment's availability from :meth:`Provider.unavailable_reason` (cheap by contract),
the machine limit from one count in the database, a warm pool's waiting machine from the
figures the worker last wrote (:func:`daaas.portal.pools.service.read_figures`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import datetime

from daaas.catalogue import Environment
from daaas.portal.config import Settings
from daaas.portal.hpc.machine import configured as hpc_configured
from daaas.portal.machines.capacity import (
    capacity_path,
    describe_flavors,
    gpu_availability,
    gpu_reason,
    read_capacity,
)
from daaas.portal.pools.rules import pool_key
from daaas.portal.pools.service import read_figures, read_waits
from daaas.portal.providers import Capacity, Provider

_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class SizeChoice:
    """One size in a card's menu: its flavor, what it is, and why it cannot be chosen."""

    flavor: str
    label: str
    gpu: bool
    disabled_reason: str | None = None


@dataclass(frozen=True)
class Card:
    """One environment's card: the entry, what the page shows of it and what can be chosen."""

    environment: Environment
    description: str
    sizes: tuple[SizeChoice, ...]
    selected: str
    #: why the environment cannot be launched on this portal at all (None: it can)
    unavailable: str | None
    #: "2 of 8 NVIDIA A100 free" when it has GPU sizes and some are free, else ""
    gpu_note: str
    #: the sizes with a warm pool's machine waiting, as the worker last counted (issue 20)
    instant: tuple[str, ...] = ()
    #: seconds from click to ready expected per size, as the worker last computed them (the
    #: median of recent launches no pool served; issue 20)
    expected_wait: dict[str, int] = field(default_factory=dict)

    @property
    def no_size(self) -> str | None:
        """Return why none of the sizes can start (no GPU for a GPU-only environment), or
        None when one can."""
        if self.sizes and all(size.disabled_reason for size in self.sizes):
            return self.sizes[0].disabled_reason
        return None

    @property
    def size_note(self) -> str:
        """Return what the card says under Launch about its sizes: why none can start, or
        why its GPU sizes cannot ("" when every size can)."""
        off = [size for size in self.sizes if size.disabled_reason]
        if not off:
            return ""
        reason = off[0].disabled_reason or ""
        return reason if len(off) == len(self.sizes) else f"GPU sizes cannot be chosen: {reason}"

    @property
    def launch_blocked(self) -> str | None:
        """Return why Launch is disabled for this card's own sake (not the machine limit):
        not available here, or no size can start. None when it can launch."""
        return self.unavailable or self.no_size


def cards(settings: Settings, provider: Provider, environments: list[Environment],
          now: datetime) -> list[Card]:
    """Return the cards of ``environments``, in their order. Raises nothing."""
    known = read_capacity(capacity_path(settings), now)
    capacity = known.capacity if known else None
    hpc = hpc_configured(settings)
    waiting = {key for key, pool in read_figures(settings, now).items() if pool.ready > 0}
    waits = read_waits(settings, now)
    return [replace(card, instant=tuple(size.flavor for size in card.sizes
                                        if pool_key(card.environment.name, size.flavor)
                                        in waiting),
                    expected_wait={size.flavor: max(1, round(waits[key]))
                                   for size in card.sizes
                                   if (key := pool_key(card.environment.name, size.flavor))
                                   in waits})
            for card in (_card(settings, provider, env, capacity, hpc)
                         for env in environments)]


def _card(settings: Settings, provider: Provider, env: Environment, capacity: Capacity | None,
          hpc: bool) -> Card:
    described = describe_flavors(settings)
    sizes = []
    for flavor in env.flavors.allowed:
        size = described.get(flavor)
        gpu = flavor in env.flavors.gpu
        label = f"{size.label} ({flavor})" if size else flavor + (" (GPU)" if gpu else "")
        reason = gpu_reason(capacity, size.gpu_model if size else "") if gpu else None
        sizes.append(SizeChoice(flavor, label, gpu, reason))
    usable = [size.flavor for size in sizes if not size.disabled_reason]
    selected = env.flavors.default if env.flavors.default in usable or not usable else usable[0]
    models = {described[f].gpu_model for f in env.flavors.gpu if f in described}
    note = gpu_availability(capacity, models.pop() if len(models) == 1 else "") \
        if env.flavors.gpu else ""
    return Card(env, env.description if hpc else without_hpc(env.description), tuple(sizes),
                selected, provider.unavailable_reason(env), note)


def without_hpc(description: str) -> str:
    """Return ``description`` without its sentences that mention the HPC cluster (for a portal
    with no cluster configured, whose cards must not promise one). Raises nothing."""
    sentences = _SENTENCE_END.split(description.strip())
    return " ".join(s for s in sentences if "HPC" not in s)
