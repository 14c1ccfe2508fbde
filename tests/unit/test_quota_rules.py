"""The effective quota of a user: their own quota wins, else the most generous group (the one
with most room left) or the sum of their groups; storage is per person. Pure functions of
:mod:`daaas.portal.quotas.rules`, and the ``quotas`` setting's parser."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from daaas.portal.config import ConfigError, load_settings, parse_quotas
from daaas.portal.quotas.rules import Bound, bounds, storage_gib, tightest

A100 = "gpu:NVIDIA A100"
GROUPS = {"mx": {A100: 2, "vcpus": 32}, "tomo": {A100: 4}, "staff": {"storage_gib": 50}}
USE = {("mx",): {A100: 1.0, "vcpus": 8.0}, ("tomo",): {A100: 4.0},
       ("mx", "tomo"): {A100: 5.0, "vcpus": 8.0}}


def group_usage(names: Sequence[str]) -> Mapping[str, float]:
    return USE.get(tuple(names), {})


def by_key(found: list[Bound]) -> dict[str, list[tuple[int, float, str]]]:
    result: dict[str, list[tuple[int, float, str]]] = {}
    for b in found:
        result.setdefault(b.key, []).append((b.limit, b.used, b.holder))
    return result


def test_most_generous_takes_the_group_with_most_room() -> None:
    found = by_key(bounds(None, GROUPS, {"machines": 1.0}, group_usage, "most_generous",
                          {"machines": 3}))
    # mx has 1 of 2 free, tomo 0 of 4: mx is the more generous now
    assert found[A100] == [(2, 1.0, "group 'mx'")]
    assert found["vcpus"] == [(32, 8.0, "group 'mx'")]
    assert found["machines"] == [(3, 1.0, "the site's")]
    assert "storage_gib" not in found  # per person, not a pool


def test_sum_adds_the_groups_limits_and_their_members_use() -> None:
    found = by_key(bounds(None, GROUPS, {}, group_usage, "sum", {}))
    assert found[A100] == [(6, 5.0, "groups 'mx' + 'tomo'")]


def test_the_users_own_quota_wins_over_groups_and_site() -> None:
    own = {A100: 1, "machines": 8}
    found = by_key(bounds(own, GROUPS, {A100: 1.0, "machines": 2.0}, group_usage,
                          "most_generous", {"machines": 3}))
    assert found[A100] == [(1, 1.0, "your")]
    assert found["machines"] == [(8, 2.0, "your")]
    assert found["vcpus"] == [(32, 8.0, "group 'mx'")]  # not set by the user: the group's


def test_refusal_names_the_quota_its_holder_and_the_use() -> None:
    bound = Bound(A100, 2, 2.0, "group 'beamline-i03'")
    assert bound.refuses(1) and not bound.refuses(0)
    assert bound.refusal(1) == ("Launch refused: group 'beamline-i03' GPU quota (NVIDIA A100) "
                                "is 2 and 2 are in use. Delete or stop a machine, or ask an "
                                "administrator.")
    memory = Bound("memory_gib", 64, 48.0, "your")
    assert not memory.refuses(16) and memory.refuses(17)
    assert memory.refusal(32, "Start").startswith(
        "Start refused: your memory quota is 64 GiB and 48 GiB is in use; this size needs "
        "32 GiB.")


def test_storage_is_the_users_own_else_the_most_generous_or_summed_group_else_the_site() -> None:
    groups = {"mx": {"storage_gib": 200}, "staff": {"storage_gib": 50}, "tomo": {A100: 1}}
    assert storage_gib(None, groups, "most_generous", 100) == 200
    assert storage_gib(None, groups, "sum", 100) == 250
    assert storage_gib({"storage_gib": 10}, groups, "sum", 100) == 10
    assert storage_gib(None, {"tomo": {A100: 1}}, "most_generous", 100) == 100


def test_tightest_keeps_the_bound_with_least_room_per_key() -> None:
    found = [Bound("machines", 3, 1.0, "the site's"), Bound("machines", 4, 4.0, "group 'mx'")]
    assert tightest(found) == [found[1]]


def test_the_setting_is_parsed_and_a_bad_entry_is_named() -> None:
    assert parse_quotas("group beamline-i03: gpu:NVIDIA A100=2, vcpus=64; user ada: "
                        "machines=5, storage_gib=500") == {
        ("group", "beamline-i03"): {A100: 2, "vcpus": 64},
        ("user", "ada"): {"machines": 5, "storage_gib": 500}}
    assert parse_quotas("") == {}
    for bad in ("team x: vcpus=2", "group x: cpus=2", "group x: vcpus=two", "group x vcpus=2",
                "group : vcpus=1", "group x: gpu:=1"):
        with pytest.raises(ValueError):
            parse_quotas(bad)
    with pytest.raises(ConfigError, match="'quotas'"):
        load_settings({"quotas": "group x: cpus=2"}, environ={})
