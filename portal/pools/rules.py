"""The setting ``warm_pools`` and pool keys: pure functions, no database."""

from __future__ import annotations

import re
from dataclasses import dataclass

from daaas.portal.config import ConfigError

_ENTRY = re.compile(r"^\s*([A-Za-z0-9_.-]+)(?:/([A-Za-z0-9_.-]+))?\s*=\s*(\d+)\s*$")


@dataclass(frozen=True)
class PoolSize:
    """One configured pool: ``size`` machines of ``environment`` on ``flavor`` (None: the
    environment's default flavor, resolved by the worker against the catalogue)."""

    environment: str
    flavor: str | None
    size: int


def parse_pools(text: str) -> tuple[PoolSize, ...]:
    """Return the pools of the setting ``warm_pools`` ('ENV[/FLAVOR]=N; ...').

    Raises ConfigError naming the entry that is not of that form.
    """
    pools = []
    for raw in (part for part in text.split(";") if part.strip()):
        match = _ENTRY.match(raw)
        if match is None:
            raise ConfigError(f"warm_pools: {raw.strip()!r} is not ENVIRONMENT[/FLAVOR]=N")
        pools.append(PoolSize(match.group(1), match.group(2), int(match.group(3))))
    return tuple(pools)


def pool_key(environment: str, flavor: str) -> str:
    """Return the pool a machine of ``environment`` on ``flavor`` waits in. Raises nothing."""
    return f"{environment}/{flavor}"
