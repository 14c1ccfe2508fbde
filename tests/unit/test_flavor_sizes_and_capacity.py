"""Sizes in words (the ``flavor_sizes`` setting) and the capacity the reconciler records for the
Analysis cards (:mod:`daaas.portal.machines.capacity`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from daaas.portal.config import DEFAULT_FLAVOR_SIZES, parse_flavor_sizes
from daaas.portal.machines.capacity import (
    gpu_availability,
    gpu_reason,
    read_capacity,
    write_capacity,
)
from daaas.portal.providers import Capacity

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)


def test_sizes_read_as_cores_memory_and_gpu() -> None:
    sizes = parse_flavor_sizes(DEFAULT_FLAVOR_SIZES)
    assert sizes["m1.large"].label == "4 cores · 16 GiB"
    assert sizes["g1.a100-1"].label == "8 cores · 64 GiB · NVIDIA A100"
    assert sizes["g1.a100-2"].label == "16 cores · 128 GiB · 2 \N{MULTIPLICATION SIGN} NVIDIA A100"
    odd = parse_flavor_sizes("tiny: 1 core, 0.5 GiB")["tiny"]
    assert (odd.label, odd.gpus) == ("1 core · 0.5 GiB", 0)
    assert parse_flavor_sizes("") == {}


@pytest.mark.parametrize("entry", ["m1.large 4 cores, 16 GiB", "m1.large: 4 cores",
                                   "m1.large: 4 CPUs, 16 GiB", "m1.large: 4 cores, 16 GB",
                                   "m1.large: 4 cores, 16 GiB, A100",
                                   "m1.large: 4 cores, 16 GiB, 1 A100, extra",
                                   "a b: 1 core, 1 GiB"])
def test_a_size_that_does_not_fit_is_named(entry: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"'{entry}' is not 'flavor: N cores, M GiB'")):
        parse_flavor_sizes(f"m1.small: 1 core, 2 GiB; {entry}")


def test_gpu_reasons_and_availability() -> None:
    none = Capacity(gpus_free=0, sessions_free=8, sessions_total=8, gpus_total=0)
    busy = Capacity(gpus_free=0, sessions_free=8, sessions_total=8, gpus_total=8)
    unknown_total = Capacity(gpus_free=0, sessions_free=8, sessions_total=8)
    free = Capacity(gpus_free=2, sessions_free=8, sessions_total=8, gpus_total=8)
    untold = Capacity(gpus_free=None, sessions_free=8, sessions_total=8)
    assert gpu_reason(none) == "This portal's machines have no GPU."
    assert gpu_reason(busy, "NVIDIA A100") is not None
    assert "All 8 NVIDIA A100 are in use" in str(gpu_reason(busy, "NVIDIA A100"))
    assert gpu_reason(unknown_total) == "No GPU is free on this portal's machines."
    assert gpu_reason(free) is None and gpu_reason(untold) is None and gpu_reason(None) is None
    assert gpu_availability(free, "NVIDIA A100") == "2 of 8 NVIDIA A100 free"
    assert gpu_availability(free) == "2 of 8 GPUs free"
    assert gpu_availability(Capacity(1, 1, 1)) == "1 GPU free"
    assert gpu_availability(none) == gpu_availability(untold) == gpu_availability(None) == ""


def test_recorded_capacity_is_read_back_until_stale(tmp_path: Path) -> None:
    path = tmp_path / "capacity.json"
    assert read_capacity(path, NOW) is None  # no worker has written it yet
    capacity = Capacity(gpus_free=2, sessions_free=3, sessions_total=8, gpus_total=8)
    write_capacity(path, capacity, NOW)
    known = read_capacity(path, NOW + timedelta(minutes=5))
    assert known is not None and known.capacity == capacity and known.read_at == NOW
    assert read_capacity(path, NOW + timedelta(minutes=11)) is None
    assert list(tmp_path.iterdir()) == [path]  # written by rename, nothing left beside it
    path.write_text("{not json")
    assert read_capacity(path, NOW) is None
    path.write_text('{"read_at": "2026-12-03T08:00:00+00:00", "gpus": 1}')
    assert read_capacity(path, NOW) is None
