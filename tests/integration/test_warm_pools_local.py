"""Warm pools on the local provider against a REAL Xvnc (issue 20).

A pooled local machine is a reserved slot: its folder and mark, its programs checked, and no
process of any account (an X server cannot change its uid, so one pre-started under the pool
account could not become the user's without leaving a process of that account behind). At
the claim, ``personalise`` starts the desktop under the user's own account. What this costs
compared with a launch from nothing is printed (``-s``), both measured here.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from daaas.portal.providers import CapacityExhausted, LaunchSpec, MachineGone, ProviderState
from daaas.portal.providers.local import LocalProvider
from tests.support.local import DESKTOP, session_processes, spec, wait_state

pytestmark = pytest.mark.skipif(shutil.which("Xvnc") is None and not os.environ.get("CI"),
                                reason="Xvnc is not installed; CI runs these tests")

POOL_UID = 29999


@pytest.fixture
def provider(tmp_path: Path) -> Iterator[LocalProvider]:
    local = LocalProvider(tmp_path / "var", desktop=DESKTOP, max_sessions=2,
                          single_user_mode=os.geteuid() != 0)
    yield local
    LocalProvider(tmp_path / "var", desktop=DESKTOP).adopt_or_cleanup(set(), remove_homes=True)
    assert session_processes(local.sessions_dir) == {}, "a test left session processes behind"


def pooled(machine_id: str) -> LaunchSpec:
    return replace(spec(machine_id), username="daaas-pool", uid=POOL_UID, gid=POOL_UID,
                   pooled=True)


def test_a_pooled_slot_runs_nothing_until_claimed_then_only_the_users_desktop(
        provider: LocalProvider) -> None:
    provider.launch(pooled("p1"))
    assert provider.poll(["p1"])["p1"].state is ProviderState.READY
    assert session_processes(provider.sessions_dir) == {}  # no process of anyone
    root = provider.sessions_dir / "p1"
    assert sorted(p.name for p in root.iterdir()) == ["pooled"]  # no home, no password
    assert root.stat().st_uid == os.geteuid() and root.stat().st_mode & 0o777 == 0o700
    assert provider.capacity().sessions_free == 1  # the slot is held
    with pytest.raises(MachineGone):
        provider.connection_target("p1")

    started = time.monotonic()
    provider.personalise(spec("p1"))
    took = time.monotonic() - started + wait_state(provider, "p1", ProviderState.READY)
    owner = spec("p1").uid if os.geteuid() == 0 else os.geteuid()
    found = session_processes(provider.sessions_dir, "p1")
    assert found and {"Xvnc"} <= set(found.values())
    assert {psutil.Process(pid).uids().real for pid in found} == {owner}
    assert POOL_UID not in {psutil.Process(pid).uids().real for pid in found}
    assert not (root / "pooled").exists()
    provider.personalise(spec("p1"))  # again (a worker that died after the call): kept
    assert set(session_processes(provider.sessions_dir, "p1")) == set(found)

    started = time.monotonic()
    provider.launch(spec("n1"))
    cold = time.monotonic() - started + wait_state(provider, "n1", ProviderState.READY)
    print(f"\nlocal: claim->READY {took:.2f}s (pooled slot), launch->READY {cold:.2f}s (none)")


def test_pooled_slots_count_against_capacity_and_vanish_on_delete(
        provider: LocalProvider) -> None:
    provider.launch(pooled("p1"))
    provider.launch(pooled("p2"))
    with pytest.raises(CapacityExhausted):
        provider.launch(pooled("p3"))
    provider.delete("p2")
    assert provider.list_machine_ids() == {"p1"}
    assert provider.adopt_or_cleanup({"p1"}) == {"p1"}  # a known pooled slot is kept
    assert provider.adopt_or_cleanup(set()) == set()
    assert provider.list_machine_ids() == set()
    with pytest.raises(MachineGone):
        provider.personalise(spec("p1"))
