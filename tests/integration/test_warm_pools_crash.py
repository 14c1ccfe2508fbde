"""Warm pools (issue 20): a real `daaas worker` SIGKILLed between handing a claimed pooled
machine to its user and recording it. The machine stays the user's (the next worker finishes
the hand-over) and never goes back to the pool; the pool is refilled with a new machine."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from daaas.portal.providers.local import LocalProvider
from tests.integration.process_scan import session_processes
from tests.support.machines import launch_from_settings, start_worker, wait_for
from tests.support.machines import machines_in as machines

pytestmark = [
    pytest.mark.skipif(not Path("/usr/bin/Xvnc").exists() and not os.environ.get("CI"),
                       reason="TigerVNC (Xvnc) not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="desktops under users' own accounts need a "
                       "portal running as root"),
]
POOL = {"DAAAS_WARM_POOLS": "base-desktop=1", "DAAAS_WARM_POOL_FREE_SESSIONS": "0"}


@pytest.fixture
def var_dir(settings_override: dict[str, Any]) -> Iterator[Path]:
    yield Path(settings_override["var_dir"])
    LocalProvider(var_dir=settings_override["var_dir"]).adopt_or_cleanup(set(),
                                                                        remove_homes=True)


def test_sigkill_between_hand_over_and_record(settings_override: dict[str, Any],
                                              var_dir: Path) -> None:
    url = settings_override["database_url"]
    filler = start_worker(settings_override, "local", **POOL)
    try:
        wait_for(lambda: any(m.pool and m.state == "ready" for m in machines(url)), 60,
                 "a ready pooled machine")
    finally:
        filler.terminate()
        filler.wait(30)
    [waiting] = [m.id for m in machines(url) if m.pool]
    assert session_processes(waiting) == []  # a reserved slot: nothing runs
    claimed = launch_from_settings({**settings_override, "warm_pools": "base-desktop=1"})
    assert claimed == waiting
    first = start_worker(settings_override,
                         "tests.integration.crash_provider:PauseAfterPersonalise", **POOL)
    try:
        wait_for(lambda: (var_dir / f"personalised-{claimed}").exists(), 60, "the hand-over")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    row = next(m for m in machines(url) if m.id == claimed)
    assert (row.state, row.pool, row.personalised_at) == ("contextualising", None, None)
    assert row.user.username == "scientist"
    uid = row.user.uid
    second = start_worker(settings_override, "local", **POOL)
    try:
        wait_for(lambda: next(m for m in machines(url) if m.id == claimed).state == "ready",
                 60, "ready for its user")
        wait_for(lambda: any(m.pool and m.state == "ready" for m in machines(url)), 60,
                 "the pool refilled")
    finally:
        second.terminate()
        second.wait(30)
    row = next(m for m in machines(url) if m.id == claimed)
    assert row.pool is None and row.user.username == "scientist"
    processes = session_processes(claimed)
    assert len([p for p in processes if p.name == "Xvnc"]) == 1
    assert {psutil.Process(p.pid).uids().real for p in processes} == {uid}
    refill = [m for m in machines(url) if m.pool]
    assert [m.id for m in refill] != [claimed] and claimed not in {m.id for m in refill}
