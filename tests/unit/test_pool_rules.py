"""The setting ``warm_pools`` parsed (portal.pools.rules), and a pool's hit rate."""

from __future__ import annotations

import pytest

from daaas.portal.config import ConfigError
from daaas.portal.pools.rules import PoolSize, parse_pools, pool_key
from daaas.portal.pools.service import PoolFigures


def test_pools_with_and_without_a_flavor() -> None:
    assert parse_pools(" dawn=2; ccp4/g1.l40s-1 = 1 ;") == (
        PoolSize("dawn", None, 2), PoolSize("ccp4", "g1.l40s-1", 1))
    assert parse_pools("") == ()
    assert pool_key("dawn", "m1.large") == "dawn/m1.large"


@pytest.mark.parametrize("bad", ["dawn", "dawn=-1", "dawn=two", "da wn=1", "a/b/c=1"])
def test_a_malformed_entry_is_named(bad: str) -> None:
    with pytest.raises(ConfigError, match="warm_pools"):
        parse_pools(f"ok=1; {bad}")


def test_hit_rate() -> None:
    figures = PoolFigures("dawn/m1.large", 2, 1, 1, claimed_last_hour=3, launches_last_hour=4,
                          held_sessions=2, held_gpus=0)
    assert figures.hit_rate == 0.75
    assert PoolFigures("p", 1, 1, 0, 0, 0, 1, 0).hit_rate is None
