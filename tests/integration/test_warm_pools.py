"""Warm pools (issue 20) on SQLite and PostgreSQL, with the in-memory provider double.

A real worker (the Reconciler with the app's settings) fills the pool; launches come through
the portal's API served by a threading server, released together, so claims really race.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import create_engine, select

from daaas.portal.audit.models import AuditEvent
from daaas.portal.auth.service import create_user, get_user
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.machines.models import Machine, MachineEvent
from daaas.portal.machines.reconciler import Reconciler
from daaas.portal.metrics.collect import scrape
from daaas.portal.pools.service import POOL_ACCOUNT, read_figures, read_waits
from tests.support.machines import ManualClock, at_once, launch, policy_reconciler
from tests.support.providers import InMemoryProvider
from tests.support.web import bearer, csrf_from, served, sign_in

POOL = "dawn/m1.xlarge"  # dawn's default flavor; every user may launch it


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The in-memory provider and a pool of five dawn desktops."""
    return {**settings_override, "provider": "memory", "warm_pools": "dawn=5",
            "warm_pool_free_sessions": 0, "warm_pool_max_age_minutes": 60}


def rows(app: Flask, *where: Any) -> list[Machine]:
    with app.extensions["daaas"].session_factory() as db:
        found = list(db.scalars(select(Machine).where(*where).order_by(Machine.created_at)))
        for row in found:
            _ = row.user, row.events
        return found


def pooled(app: Flask) -> list[Machine]:
    """The machines waiting in the pool, whatever their state but deleted or failed."""
    return rows(app, Machine.pool == POOL, Machine.state.not_in(["deleted", "deleting",
                                                                 "error"]))


def filled(app: Flask, worker: Reconciler) -> list[str]:
    """Run the worker until the pool's five machines are ready; return their ids."""
    for _ in range(5):
        worker.run_once()
    ready = [m.id for m in pooled(app) if m.state == "ready"]
    assert len(ready) == 5, [(m.state, m.pool) for m in pooled(app)]
    return ready


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    with served(app) as base:
        yield base


def test_the_worker_fills_the_pool_with_machines_of_no_one(app: Flask) -> None:
    provider = InMemoryProvider(max_sessions=40)
    ready = filled(app, policy_reconciler(app, ManualClock(), provider))
    for machine in pooled(app):
        assert machine.user.username == POOL_ACCOUNT and not machine.user.is_active
        [spec] = provider.specs_by_machine[machine.id]  # launched once, with nothing of a user
        assert spec.username == POOL_ACCOUNT and spec.mounts == ()
    figures = read_figures(app.extensions["daaas"].settings,
                           rows(app)[-1].state_changed_at)
    assert figures[POOL].ready == 5 and figures[POOL].size == 5 and len(ready) == 5


def test_twenty_launches_at_once_on_a_pool_of_five(app: Flask, server: str) -> None:
    provider = InMemoryProvider(max_sessions=40)
    worker = policy_reconciler(app, ManualClock(), provider)
    pool_ids = set(filled(app, worker))
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        for i in range(20):
            create_user(db, rt.settings, f"racer{i}", f"racer{i}-password")
    tokens = [bearer(app, f"racer{i}") for i in range(20)]
    answers = at_once(20, lambda i: requests.post(
        f"{server}/api/v1/machines", json={"environment": "dawn"}, headers=tokens[i],
        timeout=60))
    assert [a.status_code for a in answers] == [202] * 20, [a.text for a in answers]
    ids = [a.json()["id"] for a in answers]
    assert len(set(ids)) == 20  # no machine shared
    hits = [m for m in rows(app, Machine.id.in_(ids)) if m.claimed_at is not None]
    assert {m.id for m in hits} == pool_ids  # 5 hits: exactly the pool's machines
    assert len({m.user.username for m in hits}) == 5
    normal = rows(app, Machine.id.in_(ids), Machine.claimed_at.is_(None))
    assert len(normal) == 15 and {m.state for m in normal} == {"requested"}
    assert all(m.pool is None and m.state == "contextualising" for m in hits)
    for _ in range(4):
        worker.run_once()
    for m in rows(app, Machine.id.in_(ids)):
        assert m.state == "ready", (m.id, m.state)
        assert provider.spec_of(m.id).username == m.user.username
    for m in hits:  # each pooled machine handed over once, to its claimer only
        handed = provider.specs_by_machine[m.id]
        assert [s.username for s in handed] == [POOL_ACCOUNT, m.user.username]
    assert len(pooled(app)) == 5  # refilled


def test_personalisation_delivers_only_the_claimers_folders(app: Flask) -> None:
    provider = InMemoryProvider(max_sessions=40)
    worker = policy_reconciler(app, ManualClock(), provider)
    filled(app, worker)
    mine = launch(app, "scientist", "dawn")
    theirs = launch(app, "neutron", "dawn")
    worker.run_asked()
    for machine_id, owner in ((mine, "scientist"), (theirs, "neutron")):
        row = rows(app, Machine.id == machine_id)[0]
        assert row.state == "ready" and row.personalised_at is not None
        launched, handed = provider.specs_by_machine[machine_id]
        assert launched.username == POOL_ACCOUNT and launched.mounts == ()
        assert (handed.username, handed.uid) == (owner, row.user.uid)
        [storage] = handed.mounts
        assert storage.source.rstrip("/").endswith(owner) or owner in storage.source
        other = "neutron" if owner == "scientist" else "scientist"
        assert other not in storage.source
    events = [e.message for e in rows(app, Machine.id == mine)[0].events]
    assert any("claimed from the warm pool" in e for e in events)
    assert "set up for scientist" in events


def test_the_pool_refills_after_a_claim_and_keeps_its_size(app: Flask) -> None:
    provider = InMemoryProvider(max_sessions=40)
    worker = policy_reconciler(app, ManualClock(), provider)
    before = set(filled(app, worker))
    claimed = launch(app, "scientist", "dawn")
    assert claimed in before
    worker.run_asked()  # the wake-up after a claim: personalised, and the pool refilled
    waiting = pooled(app)
    assert len(waiting) == 5 and claimed not in {m.id for m in waiting}
    worker.run_once()
    worker.run_once()
    assert sorted(m.state for m in pooled(app)) == ["ready"] * 5


def test_a_pooled_machine_past_its_age_is_replaced_and_never_claimed(app: Flask) -> None:
    provider = InMemoryProvider(max_sessions=40)
    clock = ManualClock()
    worker = policy_reconciler(app, clock, provider)
    old = set(filled(app, worker))
    clock.now += timedelta(minutes=61)
    worker.run_once()
    worker.run_once()
    worker.run_once()
    for machine in rows(app, Machine.id.in_(old)):
        assert machine.state == "deleted" and machine.pool == POOL
        assert "longer than its maximum age" in machine.events[-2].message
        assert machine.id not in provider.list_machine_ids()
    assert len(pooled(app)) == 5 and not old & {m.id for m in pooled(app)}


def test_pools_give_way_to_a_users_launch(app: Flask) -> None:
    provider = InMemoryProvider(max_sessions=5)  # the pool holds every slot
    worker = policy_reconciler(app, ManualClock(), provider)
    filled(app, worker)
    wanted = launch(app, "scientist", "jupyter-python")  # no pool for this one
    worker.run_once()
    assert rows(app, Machine.id == wanted)[0].state in ("provisioning", "contextualising",
                                                        "ready")
    assert len(pooled(app)) == 4  # one gave way; not refilled while no slot is free
    worker.run_once()
    assert len(pooled(app)) == 4


def test_a_worker_lost_between_claim_and_personalisation(app: Flask) -> None:
    """The claim is committed by the portal; the worker that would personalise is gone. The
    next worker hands the machine to its user; a machine that cannot be handed over fails
    and is deleted. It never returns to the pool."""
    provider = InMemoryProvider(max_sessions=40)
    clock = ManualClock()
    filled(app, policy_reconciler(app, clock, provider))
    claimed = launch(app, "scientist", "dawn")
    other = launch(app, "neutron", "dawn")
    machine = rows(app, Machine.id == claimed)[0]
    assert machine.pool is None and machine.personalised_at is None
    # a worker started afresh (the first one is never run again) personalises it
    provider.fail(other, "the machine died during the hand-over")
    second = policy_reconciler(app, clock, provider)
    second.run_asked()
    second.run_once()
    assert rows(app, Machine.id == claimed)[0].state == "ready"
    assert rows(app, Machine.id == claimed)[0].user.username == "scientist"
    lost = rows(app, Machine.id == other)[0]
    assert lost.state == "error" and lost.pool is None
    assert lost.user.username == "neutron"
    second.run_once()
    assert other not in provider.list_machine_ids()
    assert {claimed, other}.isdisjoint({m.id for m in pooled(app)})


def card(page: str, environment: str) -> str:
    start = page.index(f'id="card-{environment}"')
    return page[start:page.index("</li>", start)]


def test_the_card_says_instant_while_a_pooled_machine_waits(app: Flask) -> None:
    client = app.test_client()
    sign_in(client, "scientist", "scientist-demo")
    assert "Instant" not in card(client.get("/analysis").text, "dawn")  # nothing counted yet
    provider = InMemoryProvider(max_sessions=40)
    filled(app, policy_reconciler(app, ManualClock(), provider))
    page = client.get("/analysis").text
    assert 'class="badge ok instant"' in card(page, "dawn")
    assert "Instant" not in card(page, "jupyter-python")  # no pool for it


def test_admins_see_the_pools_with_claims_and_hit_rate(app: Flask) -> None:
    provider = InMemoryProvider(max_sessions=40)
    worker = policy_reconciler(app, ManualClock(), provider)
    filled(app, worker)
    launch(app, "scientist", "dawn")  # a hit
    launch(app, "scientist", "dawn")  # another hit
    worker.run_asked()
    worker.run_once()
    admin = app.test_client()
    sign_in(admin, "admin", "admin-demo-pass")
    page = admin.get("/admin/pools")
    assert page.status_code == 200
    row = page.text[page.text.index(f'data-pool="{POOL}"'):]
    row = row[:row.index("</tr>")]
    assert '<td class="claimed">2</td>' in row and '<td class="hit-rate">100 %</td>' in row
    assert '<td class="size-now"><strong>5</strong> <span class="muted window-now">base size' \
        in row  # its size now
    user = app.test_client()
    sign_in(user, "scientist", "scientist-demo")
    assert user.get("/admin/pools").status_code in (403, 404)


# -- hits and misses in /metrics, resizing, the expected wait (issue 20) ----------------------


def scraped(app: Flask) -> list[Sample]:
    """Every sample of one scrape, parsed by prometheus_client's parser."""
    rt = app.extensions["daaas"]
    with rt.engine.connect() as connection:
        text = scrape(connection, rt.settings).decode()
    return [sample for family in text_string_to_metric_families(text)
            for sample in family.samples]


def metric(found: list[Sample], name: str, **labels: str) -> float | None:
    """The one sample named ``name`` with ``labels`` (None: there is none)."""
    matching = [s.value for s in found
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matching) <= 1, f"{name} {labels}: {len(matching)} samples"
    return matching[0] if matching else None


def test_metrics_count_pool_hits_misses_and_the_pools_gauges(app: Flask) -> None:
    provider = InMemoryProvider(max_sessions=40)
    worker = policy_reconciler(app, ManualClock(), provider)
    filled(app, worker)
    dawn = {"environment": "dawn", "flavor": "m1.xlarge"}
    found = scraped(app)
    assert metric(found, "daaas_pool_ready", **dawn) == 5
    assert metric(found, "daaas_pool_size", **dawn) == 5
    assert metric(found, "daaas_pool_hits_total", **dawn) == 0
    assert metric(found, "daaas_pool_misses_total", **dawn) == 0
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        for i in range(7):
            create_user(db, rt.settings, f"counted{i}", f"counted{i}-password")
    for i in range(6):
        launch(app, f"counted{i}", "dawn")  # five hits, then a miss: the pool is empty
    launch(app, "counted6", "jupyter-python")  # no pool for it: neither a hit nor a miss
    found = scraped(app)
    assert metric(found, "daaas_pool_hits_total", **dawn) == 5
    assert metric(found, "daaas_pool_misses_total", **dawn) == 1
    assert metric(found, "daaas_pool_ready", **dawn) == 0
    assert metric(found, "daaas_pool_misses_total", environment="jupyter-python") is None
    worker.run_once()  # refills: five new machines
    found = scraped(app)
    assert (metric(found, "daaas_pool_starting", **dawn) or 0) + \
        (metric(found, "daaas_pool_ready", **dawn) or 0) == 5
    assert metric(found, "daaas_pool_hits_total", **dawn) == 5  # counters never go back
    # another process (its own engine on the same database) counts the same
    rt = app.extensions["daaas"]
    other = create_engine(rt.settings.effective_database_url)
    try:
        with other.connect() as connection:
            text = scrape(connection, rt.settings).decode()
    finally:
        other.dispose()
    again = [s for f in text_string_to_metric_families(text) for s in f.samples]
    for name in ("daaas_pool_hits_total", "daaas_pool_misses_total", "daaas_pool_size"):
        assert metric(again, name, **dawn) == metric(scraped(app), name, **dawn)


def test_a_pool_resized_to_zero_counts_no_miss(app: Flask) -> None:
    admin = app.test_client()
    sign_in(admin, "admin", "admin-demo-pass")
    admin.post(f"/admin/pools/{POOL}/size",
               data={"size": "0", "csrf_token": csrf_from(admin, "/admin/pools")})
    launch(app, "scientist", "dawn")  # no pool any more: not a miss
    found = scraped(app)
    assert not metric(found, "daaas_pool_misses_total", environment="dawn")
    admin.post(f"/admin/pools/{POOL}/size",
               data={"size": "1", "csrf_token": csrf_from(admin, "/admin/pools")})
    launch(app, "scientist", "dawn")  # a pool of one, nothing ready yet: a miss
    assert metric(scraped(app), "daaas_pool_misses_total", environment="dawn") == 1


def test_an_admin_resizes_a_pool_and_the_worker_follows_without_restart(app: Flask) -> None:
    provider = InMemoryProvider(max_sessions=40)
    worker = policy_reconciler(app, ManualClock(), provider)
    filled(app, worker)
    admin = app.test_client()
    sign_in(admin, "admin", "admin-demo-pass")
    token = csrf_from(admin, "/admin/pools")
    answer = admin.post(f"/admin/pools/{POOL}/size", data={"size": "2", "csrf_token": token})
    assert answer.status_code == 303
    assert "resized" in admin.get(answer.headers["Location"]).text
    worker.run_once()  # the same worker object: it reads the new size in its cycle
    assert len(pooled(app)) == 2
    assert read_figures(app.extensions["daaas"].settings, utcnow())[POOL].size == 2
    admin.post(f"/admin/pools/{POOL}/size", data={"size": "4", "csrf_token": token})
    for _ in range(4):
        worker.run_once()
    assert len([m for m in pooled(app) if m.state == "ready"]) == 4
    with app.extensions["daaas"].session_factory() as db:
        audits = list(db.scalars(select(AuditEvent).where(AuditEvent.action == "pool.resize")
                                 .order_by(AuditEvent.id)))
    assert [(a.actor, a.target, a.detail) for a in audits] == [
        ("admin", f"pool {POOL}", "the setting -> 2"), ("admin", f"pool {POOL}", "2 -> 4")]
    page = admin.get("/admin/pools").text
    assert 'value="4"' in page[page.index(f'data-pool="{POOL}"'):]
    bad = admin.post(f"/admin/pools/{POOL}/size", data={"size": "-1", "csrf_token": token})
    assert bad.status_code == 400
    assert admin.post("/admin/pools/ccp4/m1.small/size",
                      data={"size": "3", "csrf_token": token}).status_code == 404
    user = app.test_client()
    sign_in(user, "scientist", "scientist-demo")
    refused = user.post(f"/admin/pools/{POOL}/size",
                        data={"size": "9", "csrf_token": csrf_from(user, "/analysis")})
    assert refused.status_code in (403, 404)
    assert read_figures(app.extensions["daaas"].settings, utcnow())[POOL].size == 4


def test_the_expected_wait_is_the_median_of_the_last_twenty_ready_launches(app: Flask) -> None:
    rt = app.extensions["daaas"]
    env = dict(rt.catalogue.environments)["jupyter-python"]
    flavor = env.flavors.default
    clock = ManualClock()
    start = clock.now - timedelta(hours=14)
    # 25 launches: the 5 oldest took 1000 s, the last 20 took 10, 20 or 30 s (median 20)
    durations = [1000.0] * 5 + [10.0] * 6 + [20.0] * 8 + [30.0] * 6
    with unit_of_work(rt.session_factory) as db:
        owner = get_user(db, "scientist")
        for i, seconds in enumerate(durations):
            asked = start + timedelta(minutes=30 * i)
            machine = Machine(id=f"known-{i:02d}", user=owner, name=f"known {i}",
                              environment_name=env.name, environment=env, flavor=flavor,
                              provider="memory", state="deleted", created_at=asked,
                              state_changed_at=asked, expires_at=asked + timedelta(days=1))
            db.add(machine)
            db.add(MachineEvent(machine_id=machine.id, from_state=None, to_state="requested",
                                at=asked, message="asked"))
            db.add(MachineEvent(machine_id=machine.id, from_state="contextualising",
                                to_state="ready", at=asked + timedelta(seconds=seconds),
                                message="ready"))
    client = app.test_client()
    sign_in(client, "scientist", "scientist-demo")
    assert "expected-wait" not in card(client.get("/analysis").text, "jupyter-python")
    worker = policy_reconciler(app, clock, InMemoryProvider(max_sessions=40))
    worker.run_once()  # the worker computes the waits with the pools' figures
    assert read_waits(rt.settings, clock.now)[f"jupyter-python/{flavor}"] == 20.0
    shown = card(client.get("/analysis").text, "jupyter-python")
    assert '<span class="badge expected-wait"' in shown and "about 20 s" in shown
    filled(app, worker)  # a pooled machine waits for dawn: "Instant", no wait shown
    dawn = card(client.get("/analysis").text, "dawn")
    assert "Instant" in dawn and "expected-wait" not in dawn
