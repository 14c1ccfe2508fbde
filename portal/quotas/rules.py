"""How the quotas of a user and of their groups combine: pure functions, no database.

A quota is a mapping of limits by key: ``machines``, ``vcpus``, ``memory_gib``,
``storage_gib`` and ``gpu:<model>`` (a GPU model as ``flavor_sizes`` names it). Compute
limits of a group are a pool its members share (every machine of a member counts); a user's
own quota (an override) limits that user alone and replaces the groups' limits of the same key.
Storage is per person: a group's ``storage_gib`` is what each member gets.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

Limits = Mapping[str, int]
Usage = Mapping[str, float]
Policy = Literal["most_generous", "sum"]

#: The limits that are per person, never a pool.
PERSONAL = frozenset({"storage_gib"})
_NAMES = {"machines": "machine quota", "vcpus": "vCPU quota", "memory_gib": "memory quota",
          "storage_gib": "storage quota"}


def quota_name(key: str) -> str:
    """Return how people call the limit ``key``: "GPU quota (NVIDIA A100)", "vCPU quota".
    Raises nothing."""
    return f"GPU quota ({key[4:]})" if key.startswith("gpu:") else _NAMES.get(key, key)


def amount(key: str, value: float) -> str:
    """Return ``value`` of ``key`` as people read it: "64 GiB" for memory, "2" else."""
    return f"{value:g} GiB" if key in ("memory_gib", "storage_gib") else f"{value:g}"


@dataclass(frozen=True)
class Bound:
    """One limit that applies to a user's next launch: ``limit`` of ``key`` held by
    ``holder`` ("your", "group 'beamline-i03'", "the site's"), of which ``used`` is in use."""

    key: str
    limit: int
    used: float
    holder: str

    @property
    def room(self) -> float:
        """What is left under this limit (negative when over). Raises nothing."""
        return self.limit - self.used

    def refuses(self, need: float) -> bool:
        """Return True when ``need`` more does not fit. Raises nothing."""
        return need > 0 and self.used + need > self.limit

    def refusal(self, need: float, what: str = "Launch") -> str:
        """Return the person's message for a ``what`` ("Launch", "Start") this bound refuses
        because it needs ``need`` more. Raises nothing."""
        verb = "is" if self.used == 1 or self.key == "memory_gib" else "are"
        size = f"; this size needs {amount(self.key, need)}" if need != 1 else ""
        return (f"{what} refused: {self.holder} {quota_name(self.key)} is "
                f"{amount(self.key, self.limit)} and {amount(self.key, self.used)} {verb} in "
                f"use{size}. Delete or stop a machine, or ask an administrator.")


def holder_of(groups: Sequence[str]) -> str:
    """Return "group 'a'" or "groups 'a' + 'b'" (a summed quota). Raises nothing."""
    names = " + ".join(f"'{g}'" for g in groups)
    return f"group{'s' if len(groups) > 1 else ''} {names}"


def bounds(own: Limits | None, groups: Mapping[str, Limits], own_usage: Usage,
           group_usage: Callable[[Sequence[str]], Usage], policy: Policy,
           site: Limits) -> list[Bound]:
    """Return every compute limit a user's launch must fit, by key.

    ``own`` is the user's own quota (it wins for the keys it sets), ``groups`` the quotas of
    the user's groups, ``site`` the per-user limits of the site (``max_machines_per_user``),
    which apply unless ``own`` sets the key. ``group_usage(names)`` is what the members of
    those groups use together. A key set by several groups is bounded by the group with the
    most room left ("most_generous") or by their summed limits ("sum"). Raises nothing.
    """
    keys = sorted({*(own or {}), *site, *(k for g in groups.values() for k in g)} - PERSONAL)
    found: list[Bound] = []
    for key in keys:
        if own is not None and key in own:
            found.append(Bound(key, own[key], own_usage.get(key, 0), "your"))
            continue
        if key in site:
            found.append(Bound(key, site[key], own_usage.get(key, 0), "the site's"))
        having = sorted(g for g, limits in groups.items() if key in limits)
        if having:
            found.append(_group_bound(key, having, groups, group_usage, policy))
    return found


def _group_bound(key: str, having: list[str], groups: Mapping[str, Limits],
                 group_usage: Callable[[Sequence[str]], Usage], policy: Policy) -> Bound:
    if policy == "sum":
        return Bound(key, sum(groups[g][key] for g in having), group_usage(having).get(key, 0),
                     holder_of(having))
    options = [Bound(key, groups[g][key], group_usage([g]).get(key, 0), holder_of([g]))
               for g in having]
    return max(options, key=lambda b: (b.room, b.limit))


def storage_gib(own: Limits | None, groups: Mapping[str, Limits], policy: Policy,
                site_gib: int) -> int:
    """Return a user's storage quota (GiB): their own, else the most generous (or the sum)
    of their groups', else the site's ``storage_quota_gb``. Raises nothing."""
    if own is not None and "storage_gib" in own:
        return own["storage_gib"]
    values = [limits["storage_gib"] for limits in groups.values() if "storage_gib" in limits]
    if not values:
        return site_gib
    return sum(values) if policy == "sum" else max(values)


def tightest(found: Sequence[Bound]) -> list[Bound]:
    """Return one bound per key, the one with the least room, in ``found``'s order."""
    best: dict[str, Bound] = {}
    for bound in found:
        if bound.key not in best or bound.room < best[bound.key].room:
            best[bound.key] = bound
    return list(best.values())
