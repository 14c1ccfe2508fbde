"""Warm pool schedules and the pools' admin API (issue 20) on SQLite and PostgreSQL.

A real worker (the Reconciler with the app's settings and a clock the test moves) follows a
schedule read in the facility's time zone; administrators change a pool's size and schedule
through /api/v1/admin/pools (audited, kept in the database so every web host agrees), and the
Warm pools page shows the size in force now.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select

from daaas.portal.api.openapi import openapi_document
from daaas.portal.audit.models import AuditEvent
from daaas.portal.config import ConfigError
from daaas.portal.machines.models import Machine
from daaas.portal.pools.models import PoolSetting
from daaas.portal.pools.rules import make_window, parse_days, parse_schedules, size_in_force
from daaas.portal.pools.service import read_figures
from tests.support.machines import ManualClock, policy_reconciler
from tests.support.providers import InMemoryProvider
from tests.support.web import bearer, csrf_from, sign_in

POOL = "dawn/m1.xlarge"  # dawn's default flavor
LONDON = ZoneInfo("Europe/London")
# Monday 1 June 2026, British Summer Time (UTC+1): 09:30 in London is 08:30 UTC
MONDAY_MORNING = datetime(2026, 6, 1, 9, 30, tzinfo=LONDON).astimezone(UTC)


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The in-memory provider, a pool of one dawn desktop, three during weekday hours."""
    return {**settings_override, "provider": "memory", "warm_pools": "dawn=1",
            "warm_pool_schedules": "dawn: Mon-Fri 08:00-18:00=3",
            "facility_timezone": "Europe/London",
            "warm_pool_free_sessions": 0, "warm_pool_max_age_minutes": 100000}


def pooled(app: Flask) -> list[Machine]:
    with app.extensions["daaas"].session_factory() as db:
        return list(db.scalars(select(Machine).where(
            Machine.pool == POOL, Machine.state.not_in(["deleted", "deleting", "error"]))))


def cycles(worker: Any, count: int = 4) -> None:
    for _ in range(count):
        worker.run_once()


# -- the rules, pure ---------------------------------------------------------------------------


def test_days_and_windows_are_read_as_written() -> None:
    assert parse_days("Mon-Fri") == (0, 1, 2, 3, 4)
    assert parse_days("sat,SUN") == (5, 6)
    assert parse_days("Fri-Mon") == (0, 4, 5, 6)
    assert parse_days("daily") == tuple(range(7))
    (dawn,) = parse_schedules("dawn: Mon-Fri 08:00-18:00=3, Sat,Sun 10:00-14:00=1")
    assert [w.text() for w in dawn.windows] == ["Mon-Fri 08:00-18:00=3",
                                                "Sat,Sun 10:00-14:00=1"]
    for bad, named in (("dawn: Mon-Fri 8-18=3", "not DAYS"), ("dawn: Mon-Fry 08:00-18:00=3",
                                                              "'mon-fry'"),
                       ("dawn: daily 08:00-25:00=3", "end '25:00'"),
                       ("dawn: daily 08:00-18:00=101", "size 101"), ("dawn Mon", "is not")):
        with pytest.raises(ConfigError, match=named):
            parse_schedules(bad)


def test_the_size_in_force_follows_the_window_and_midnight() -> None:
    day = make_window("Mon-Fri", "08:00", "18:00", 3)
    night = make_window("Fri", "22:00", "06:00", 2)  # Friday night into Saturday morning
    monday = datetime(2026, 6, 1, 9, 0)
    assert size_in_force(1, (day, night), monday) == (3, day)
    assert size_in_force(1, (day, night), monday.replace(hour=18)) == (1, None)  # end excluded
    assert size_in_force(1, (day, night), datetime(2026, 6, 6, 5, 59)) == (2, night)  # Sat
    assert size_in_force(1, (day, night), datetime(2026, 6, 6, 6, 0)) == (1, None)
    assert size_in_force(1, (day, night), datetime(2026, 6, 5, 23, 0)) == (2, night)  # Fri
    assert size_in_force(5, (make_window("daily", "00:00", "24:00", 0),), monday)[0] == 0


# -- the worker follows the schedule -----------------------------------------------------------


def test_the_worker_grows_the_pool_in_its_window_and_shrinks_it_after(app: Flask) -> None:
    clock = ManualClock()
    clock.now = MONDAY_MORNING
    worker = policy_reconciler(app, clock, InMemoryProvider(max_sessions=20))
    cycles(worker)
    assert len(pooled(app)) == 3  # 09:30 in London on a Monday: the window's size
    assert read_figures(app.extensions["daaas"].settings, MONDAY_MORNING)[POOL].size == 3
    clock.now = datetime(2026, 6, 1, 18, 0, tzinfo=LONDON).astimezone(UTC)  # 17:00 UTC
    cycles(worker)
    assert len(pooled(app)) == 1  # the window ended at 18:00 London time, not UTC
    clock.now = datetime(2026, 6, 6, 9, 30, tzinfo=LONDON).astimezone(UTC)  # Saturday
    cycles(worker, 2)
    assert len(pooled(app)) == 1


# -- the admin API -----------------------------------------------------------------------------


def admin_api(app: Flask) -> tuple[Any, dict[str, str]]:
    return app.test_client(), bearer(app, "admin")


def test_admins_read_and_change_a_pool_through_the_api_and_it_is_audited(app: Flask) -> None:
    client, headers = admin_api(app)
    listed = client.get("/api/v1/admin/pools", headers=headers)
    assert listed.status_code == 200
    (pool,) = listed.get_json()["pools"]
    assert (pool["key"], pool["setting_size"], pool["size"], pool["size_source"]) == \
        (POOL, 1, 1, "setting")
    assert pool["schedule"] == [{"days": "Mon-Fri", "start": "08:00", "end": "18:00",
                                 "size": 3}]
    assert pool["schedule_source"] == "setting" and pool["timezone"] == "Europe/London"
    assert pool["size_now"] in (1, 3)
    # a schedule whose window holds now, whatever the time this test runs
    now = datetime.now(LONDON)
    start, end = (now - timedelta(minutes=5)), (now + timedelta(minutes=5))
    if start.date() != now.date() or end.date() != now.date():
        start, end = now.replace(hour=0, minute=0), now.replace(hour=23, minute=59)
    window = {"days": "daily", "start": start.strftime("%H:%M"), "end": end.strftime("%H:%M"),
              "size": 4}
    put = client.put(f"/api/v1/admin/pools/{POOL}", json={"size": 2, "schedule": [window]},
                     headers=headers)
    assert put.status_code == 200, put.get_json()
    body = put.get_json()
    assert (body["size"], body["size_source"], body["schedule_source"]) == (2, "admin",
                                                                            "admin")
    assert body["size_now"] == 4 and body["window_now"] == window
    assert body["updated_by"] == "admin"
    patched = client.patch(f"/api/v1/admin/pools/{POOL}", json={"schedule": []},
                           headers=headers).get_json()
    assert (patched["size"], patched["size_now"], patched["schedule"]) == (2, 2, [])
    back = client.patch(f"/api/v1/admin/pools/{POOL}", json={"size": None, "schedule": None},
                        headers=headers).get_json()
    assert (back["size"], back["size_source"], back["schedule_source"]) == (1, "setting",
                                                                            "setting")
    with app.extensions["daaas"].session_factory() as db:
        audits = [(a.action, a.actor, a.target, a.detail, a.admin) for a in db.scalars(
            select(AuditEvent).where(AuditEvent.action.like("pool.%"))
            .order_by(AuditEvent.id))]
        assert db.get(PoolSetting, POOL) is not None  # in the database, for every web host
    text = f"daily {window['start']}-{window['end']}=4"
    assert audits == [
        ("pool.resize", "admin", f"pool {POOL}", "the setting -> 2", True),
        ("pool.schedule", "admin", f"pool {POOL}", f"schedule: {text}", True),
        ("pool.schedule", "admin", f"pool {POOL}", "schedule: none", True),
        ("pool.resize", "admin", f"pool {POOL}", "2 -> the setting", True),
        ("pool.schedule", "admin", f"pool {POOL}", "schedule: the setting's", True)]


@pytest.mark.parametrize(("method", "body", "named"), [
    ("PUT", {}, "size: field required"),
    ("PUT", {"size": "2"}, "size: input should be a valid integer"),
    ("PUT", {"size": 101}, "size: input should be less than or equal to 100"),
    ("PATCH", {"size": -1}, "size: input should be greater than or equal to 0"),
    ("PATCH", {"schedule": [{"days": "Mon-Fri", "start": "8:00", "end": "18:00", "size": 1}]},
     "schedule.0.start: string should match pattern"),
    ("PATCH", {"schedule": [{"days": "Mon-Fri", "start": "08:00", "end": "18:00"}]},
     "schedule.0.size: field required"),
    ("PATCH", {"schedule": [{"days": "Moonday", "start": "08:00", "end": "18:00", "size": 1}]},
     "schedule[0]: 'moonday' is not a day"),
    ("PATCH", {"schedule": [{"days": "daily", "start": "08:00", "end": "08:00", "size": 1}]},
     "schedule[0]: 08:00-08:00 is an empty window"),
])
def test_a_bad_change_names_the_field(app: Flask, method: str, body: Any, named: str) -> None:
    client, headers = admin_api(app)
    answer = client.open(f"/api/v1/admin/pools/{POOL}", method=method, json=body,
                         headers=headers)
    assert answer.status_code == 400
    assert named in answer.get_json()["error"]["message"].lower()


def test_only_admins_change_only_configured_pools(app: Flask) -> None:
    client, headers = admin_api(app)
    assert client.put("/api/v1/admin/pools/ccp4/m1.small", json={"size": 1},
                      headers=headers).status_code == 404
    assert client.put("/api/v1/admin/pools/dawn/m1.small", json={"size": 1},
                      headers=headers).status_code == 404  # not the pool's flavor
    user = bearer(app, "scientist")
    assert client.get("/api/v1/admin/pools", headers=user).status_code == 403
    assert client.put(f"/api/v1/admin/pools/{POOL}", json={"size": 1},
                      headers=user).status_code == 403
    with app.extensions["daaas"].session_factory() as db:
        assert db.scalars(select(PoolSetting)).all() == []


def test_the_api_is_in_the_openapi_document() -> None:
    paths = openapi_document()["paths"]
    assert set(paths["/admin/pools/{environment}/{flavor}"]) == {"parameters", "put", "patch"}
    put = paths["/admin/pools/{environment}/{flavor}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/PoolResize"}
    assert "get" in paths["/admin/pools"]


# -- the page ----------------------------------------------------------------------------------


def test_the_page_shows_the_schedule_and_the_size_now(app: Flask) -> None:
    client, headers = admin_api(app)
    now = datetime.now(LONDON)
    day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[now.weekday()]
    client.put(f"/api/v1/admin/pools/{POOL}", headers=headers, json={
        "size": 1, "schedule": [{"days": day, "start": "00:00", "end": "24:00", "size": 6}]})
    admin = app.test_client()
    sign_in(admin, "admin", "admin-demo-pass")
    page = admin.get("/admin/pools").text
    row = page[page.index(f'data-pool="{POOL}"'):]
    row = row[:row.index("</tr>")]
    assert '<td class="size-now"><strong>6</strong>' in row
    assert f'<li class="in-force">{day} 00:00\N{EN DASH}24:00: 6</li>' in row
    assert "set by an administrator" in row
    assert "Europe/London" in page
    answer = admin.post(f"/admin/pools/{POOL}/size",
                        data={"size": "2", "csrf_token": csrf_from(admin, "/admin/pools")})
    assert answer.status_code == 303
    listed = client.get("/api/v1/admin/pools", headers=headers).get_json()["pools"][0]
    assert (listed["size"], listed["size_now"]) == (2, 6)  # the window still wins
