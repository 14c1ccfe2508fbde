"""The admin console in a real browser: an administrator filters the machines, stops two with
a reason after the confirmation step, and their owner sees the reason on the machine card and
page; the usage plot is rendered (the portal served in-process on the in-memory provider, so
no real desktop is started; screenshots in the test's tmp_path)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect
from sqlalchemy import update

from daaas.portal import create_app
from daaas.portal.auth.service import get_user
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.machines import service
from daaas.portal.machines.models import Machine, MachineEvent
from tests.support.browser import signed_in_page
from tests.support.machines import machine, reconciler
from tests.support.providers import InMemoryProvider
from tests.support.web import served

pytestmark = pytest.mark.e2e
REASON = "Hypervisor maintenance at 18:00; your disk is kept"


@pytest.fixture
def app(settings_override: dict[str, Any]) -> Iterator[Flask]:
    application = create_app({**settings_override, "provider": "memory",
                              "max_machines_per_user": 5})
    yield application
    application.extensions["daaas"].engine.dispose()


def launch(app: Flask, username: str, environment: str, flavor: str | None = None) -> str:
    rt = app.extensions["daaas"]
    with unit_of_work(rt.session_factory) as db:
        return service.request_launch(db, rt.settings, rt.catalogue, get_user(db, username),
                                      environment, flavor).id


def ran_for(app: Flask, machine_id: str, hours: float) -> None:
    """Test set-up: the machine was launched ``hours`` ago and has been ready since."""
    start = utcnow() - timedelta(hours=hours)
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        db.execute(update(Machine).where(Machine.id == machine_id).values(created_at=start))
        db.execute(update(MachineEvent).where(MachineEvent.machine_id == machine_id)
                   .values(at=start))


def test_admin_filters_bulk_stops_two_with_a_reason_and_the_owner_sees_it(
        app: Flask, browser: Any, tmp_path: Path) -> None:
    first = launch(app, "scientist", "ccp4")
    second = launch(app, "scientist", "ccp4", "g1.l40s-1")
    other = launch(app, "neutron", "base-desktop")
    worker = reconciler(app, InMemoryProvider(ready_after_polls=1))
    worker.run_once()
    worker.run_once()
    for machine_id, hours in ((first, 30), (second, 20), (other, 12)):
        assert machine(app, machine_id).state == "ready"
        ran_for(app, machine_id, hours)
    with served(app) as url:
        page = signed_in_page(browser, url, "admin", "admin-demo-pass")
        page.goto(url + "/admin/machines")
        expect(page.locator("#admin-machines tbody tr[data-machine]")).to_have_count(3)
        page.fill("#filter-user", "scientist")
        page.select_option("#filter-environment", "ccp4")
        page.click("#apply-filters")
        rows = page.locator("#admin-machines tbody tr[data-machine]")
        expect(rows).to_have_count(2)
        expect(page.locator(f'tr[data-machine="{other}"]')).to_have_count(0)
        page.check(f"#pick-{first}")
        page.check(f"#pick-{second}")
        page.screenshot(path=str(tmp_path / "admin-machines.png"), full_page=True)
        page.click("#bulk-stop")
        expect(page.locator("h1")).to_have_text("Stop 2 machine(s)?")
        assert machine(app, first).state == "ready"  # nothing before the confirmation
        page.fill("#bulk-reason", REASON)
        page.click("#confirm-bulk")
        expect(page.locator("#bulk-done")).to_contain_text(REASON)
        expect(page.locator("#bulk-done-list li")).to_have_count(2)
        worker.run_once()  # the reconciler stops them ...
        worker.run_once()  # ... and sees them stopped
        assert {machine(app, first).state, machine(app, second).state} == {"stopped"}
        assert machine(app, other).state == "ready"

        page.goto(url + "/admin/usage?by=user")
        chart = page.locator("svg.usage-chart")
        expect(chart).to_be_visible()
        expect(chart.locator("g.usage-row")).to_have_count(2)
        expect(page.locator('#usage-table tr[data-key="scientist"]')).to_be_visible()
        box = chart.bounding_box()
        assert box is not None and box["width"] > 400 and box["height"] > 100
        page.screenshot(path=str(tmp_path / "admin-usage.png"), full_page=True)
        csv_link = page.locator("#usage-csv").get_attribute("href")
        assert csv_link is not None and "usage.csv?by=user" in csv_link
        page.close()

        owner = signed_in_page(browser, url)  # the owner, after the admin
        card = owner.locator(f'#my-machines tr[data-machine="{first}"]')
        expect(card.locator(".admin-reason")).to_have_text(
            f"Stopped by an administrator: {REASON}", timeout=10_000)
        expect(owner.locator(f'#my-machines tr[data-machine="{second}"] .admin-reason'))\
            .to_contain_text(REASON)
        owner.screenshot(path=str(tmp_path / "owner-analysis.png"), full_page=True)
        owner.goto(f"{url}/machines/{first}")
        expect(owner.locator("#admin-reason")).to_have_text(
            f"An administrator stopped this machine: {REASON}")
        expect(owner.locator("table.events")).to_contain_text(
            f"stop requested by admin: {REASON}")
        owner.close()
    print(f"screenshots in {tmp_path}")
