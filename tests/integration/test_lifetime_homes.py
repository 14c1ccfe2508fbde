"""Nothing lost and activity besides a desktop connection (issue 15): a local machine deleted
by the lifetime policy keeps its home folder for home_grace_days (moved aside by the real
local provider's code), the owner's e-mail says where; an administrator restores it into the
owner's storage (page and CLI), or the worker purges it after the grace period. "Keep running
until", the VM agent's authenticated activity report and an unfinished HPC job launched from
the machine hold off the idle stop. Real SQLite and PostgreSQL, the reconciler's clock
injected; the provider double keeps real session folders on disk."""

from __future__ import annotations

import os
from collections.abc import Collection
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update

from daaas.portal import create_app
from daaas.portal.auth.models import User
from daaas.portal.bootstrap.models import MachineContext
from daaas.portal.db import unit_of_work, utcnow
from daaas.portal.hpc.models import HpcJob
from daaas.portal.machines.homes import KeptHome
from daaas.portal.machines.models import Machine
from daaas.portal.machines.secrets import token_digest
from daaas.portal.providers import LaunchSpec
from daaas.portal.providers.local import LocalProvider
from daaas.portal.providers.local.session import SessionPaths
from tests.support.machines import ManualClock as Clock
from tests.support.machines import launch, machine, outbox, policy_reconciler
from tests.support.providers import InMemoryProvider
from tests.support.web import bearer, csrf_from, sign_in

H, MIN = timedelta(hours=1), timedelta(minutes=1)


class SessionFolderProvider(InMemoryProvider):
    """The memory double, but each machine has a real local session folder with a home (as
    the local provider lays it out), and deletions go through the real local provider's
    ``delete`` and ``delete_keeping_home`` (no desktop processes run)."""

    keeps_homes = True

    def __init__(self, var_dir: Path) -> None:
        super().__init__(ready_after_polls=1)
        self.local = LocalProvider(var_dir=var_dir)

    def launch(self, spec: LaunchSpec) -> None:
        super().launch(spec)
        paths = SessionPaths.of(self.local.sessions_dir, spec.machine_id)
        paths.prepare(os.getuid(), os.getgid())
        (paths.home / "results").mkdir(exist_ok=True)
        (paths.home / "results" / "refined.pdb").write_text("ATOM 1\n")
        link = paths.home / "storage"
        if not link.is_symlink():
            link.symlink_to(Path("..") / "storage", target_is_directory=True)

    def delete(self, machine_id: str) -> None:
        super().delete(machine_id)
        self.local.delete(machine_id)

    def delete_keeping_home(self, machine_id: str, keep_at: Path) -> bool:
        super().delete(machine_id)
        return self.local.delete_keeping_home(machine_id, keep_at)

    def list_machine_ids(self) -> set[str]:
        return super().list_machine_ids()

    def adopt_or_cleanup(self, known_ids: Collection[str]) -> set[str]:
        return super().adopt_or_cleanup(known_ids)


@pytest.fixture
def app(settings_override: dict[str, Any]) -> Flask:
    application = create_app({**settings_override, "provider": "memory",
                              "home_grace_days": 7, "keep_running_max_hours": 24,
                              "public_url": "https://daaas.example.org"})
    with unit_of_work(application.extensions["daaas"].session_factory) as db:
        db.execute(update(User).where(User.username == "scientist")
                   .values(email="ada@example.org"))
    return application


def var(app: Flask) -> Path:
    return Path(app.extensions["daaas"].settings.var_dir)


def ready_machine(app: Flask, clock: Clock, provider: InMemoryProvider) -> str:
    machine_id = launch(app, environment="ccp4")
    policy_reconciler(app, clock, provider).run_once()
    assert machine(app, machine_id).state == "ready"
    return machine_id


def set_expiry(app: Flask, machine_id: str, when: datetime) -> None:
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        db.execute(update(Machine).where(Machine.id == machine_id).values(expires_at=when))


def admin_client(app: Flask) -> FlaskClient:
    client = app.test_client()
    sign_in(client, "admin", "admin-demo-pass")
    return client


def kept_row(app: Flask, machine_id: str) -> KeptHome | None:
    with app.extensions["daaas"].session_factory() as db:
        row: KeptHome | None = db.scalar(select(KeptHome).where(
            KeptHome.machine_id == machine_id))
        return row


def expire(app: Flask, clock: Clock, provider: InMemoryProvider, machine_id: str) -> None:
    """The machine's end passes; the worker deletes it by policy (two cycles)."""
    clock.now = utcnow() + 1 * MIN
    set_expiry(app, machine_id, clock.now - 1 * MIN)
    worker = policy_reconciler(app, clock, provider)
    worker.run_once()
    worker.run_once()
    assert machine(app, machine_id).state == "deleted"


def test_a_policy_deletion_keeps_the_home_and_an_admin_restores_it_into_storage(
        app: Flask) -> None:
    clock, provider = Clock(), SessionFolderProvider(var(app))
    machine_id = ready_machine(app, clock, provider)
    session = var(app) / "sessions" / machine_id
    assert (session / "home" / "results" / "refined.pdb").exists()
    expire(app, clock, provider, machine_id)
    assert not session.exists()  # the session is gone ...
    kept = var(app) / "kept-homes" / machine_id
    assert (kept / "results" / "refined.pdb").read_text() == "ATOM 1\n"  # ... its home kept
    assert not (kept / "storage").is_symlink()  # not a link into the storage any more
    row = kept_row(app, machine_id)
    assert row is not None and row.status == "kept"
    assert row.purge_after - row.decided_at == timedelta(days=7)
    name = machine(app, machine_id).name
    folder = f"restored-{name.replace(' · ', '-').replace(' ', '-')}-{row.decided_at:%Y-%m-%d}"
    mail = next(n for n in outbox(app) if n.kind == "expired")
    assert f"kept until {row.purge_after:%d %b %Y}" in mail.body
    assert f"~/storage/{folder}" in mail.body
    assert "home folder is kept until" in machine(app, machine_id).events[-2].message

    client = admin_client(app)
    page = client.get("/admin/lifetimes").get_data(as_text=True)
    assert f'id="restore-{machine_id}"' in page.split('id="kept-homes"')[1]
    answer = client.post(f"/admin/lifetimes/homes/{machine_id}/restore",
                         data={"csrf_token": csrf_from(client, "/admin/lifetimes")})
    assert answer.status_code == 303
    storage = var(app) / "storage" / "scientist"
    assert (storage / folder / "results" / "refined.pdb").read_text() == "ATOM 1\n"
    assert not kept.exists()
    shown = client.get(answer.headers["Location"]).get_data(as_text=True)
    assert f"~/storage/{folder}" in shown and f'id="restore-{machine_id}"' not in shown
    assert f"home folder restored to ~/storage/{folder} by admin" in \
        machine(app, machine_id).events[-1].message
    again = client.post(f"/admin/lifetimes/homes/{machine_id}/restore",
                        data={"csrf_token": csrf_from(client, "/admin/lifetimes")})
    assert again.status_code == 409
    scientist = app.test_client()
    sign_in(scientist, "scientist", "scientist-demo")
    assert scientist.post(f"/admin/lifetimes/homes/{machine_id}/restore", data={
        "csrf_token": csrf_from(scientist, "/analysis")}).status_code == 403


def test_the_worker_purges_a_kept_home_after_the_grace_period(app: Flask) -> None:
    clock, provider = Clock(), SessionFolderProvider(var(app))
    machine_id = ready_machine(app, clock, provider)
    expire(app, clock, provider, machine_id)
    kept = var(app) / "kept-homes" / machine_id
    assert kept.is_dir()
    clock.now += timedelta(days=6)
    policy_reconciler(app, clock, provider).run_once()
    assert kept.is_dir()
    clock.now += timedelta(days=1, minutes=1)
    policy_reconciler(app, clock, provider).run_once()
    assert not kept.exists()
    row = kept_row(app, machine_id)
    assert row is not None and row.status == "purged"


def test_a_deletion_by_the_owner_keeps_nothing(app: Flask) -> None:
    clock, provider = Clock(), SessionFolderProvider(var(app))
    machine_id = ready_machine(app, clock, provider)
    app.test_client().delete(f"/api/v1/machines/{machine_id}", headers=bearer(app, "scientist"))
    policy_reconciler(app, clock, provider).run_once()
    assert machine(app, machine_id).state == "deleted"
    assert not (var(app) / "sessions" / machine_id).exists()
    assert not (var(app) / "kept-homes" / machine_id).exists()
    assert kept_row(app, machine_id) is None


def test_homes_restore_from_the_command_line(app: Flask,
                                             settings_override: dict[str, Any]) -> None:
    from click.testing import CliRunner

    from daaas.portal.cli import main

    clock, provider = Clock(), SessionFolderProvider(var(app))
    machine_id = ready_machine(app, clock, provider)
    expire(app, clock, provider, machine_id)
    env = {"DAAAS_DATABASE_URL": settings_override["database_url"],
           "DAAAS_VAR_DIR": settings_override["var_dir"], "DAAAS_SECRET_KEY": "x" * 32}
    listed = CliRunner().invoke(main, ["homes", "list"], env=env)
    assert listed.exit_code == 0 and machine_id in listed.output, listed.output
    result = CliRunner().invoke(main, ["homes", "restore", machine_id], env=env)
    assert result.exit_code == 0, result.output
    assert "into the storage of scientist as ~/storage/restored-" in result.output
    restored = list((var(app) / "storage" / "scientist").glob("restored-*"))
    assert [p.name for p in restored] == [result.output.split("~/storage/")[1].strip()]
    again = CliRunner().invoke(main, ["homes", "restore", machine_id], env=env)
    assert again.exit_code == 1 and "nothing to restore" in again.output
    missing = CliRunner().invoke(main, ["homes", "restore", "no-such"], env=env)
    assert missing.exit_code == 1 and "No home folder is kept" in missing.output


def idle_test_machine(app: Flask) -> tuple[Clock, InMemoryProvider, str, datetime]:
    clock, provider = Clock(), InMemoryProvider(ready_after_polls=1)
    machine_id = ready_machine(app, clock, provider)
    return clock, provider, machine_id, machine(app, machine_id).state_changed_at


def stops_at(app: Flask, clock: Clock, provider: InMemoryProvider, machine_id: str,
             when: datetime) -> str:
    """Run a fresh worker (the idle check runs on its first cycle) at ``when``; return the
    machine's state."""
    clock.now = when
    policy_reconciler(app, clock, provider).run_once()
    return machine(app, machine_id).state


def test_keep_running_holds_off_the_idle_stop_until_then_within_the_limit(
        app: Flask) -> None:
    clock, provider, machine_id, ready_at = idle_test_machine(app)  # idle after 240 min
    url = f"/api/v1/machines/{machine_id}/keep-running"
    too_long = app.test_client().post(url, json={"hours": 25}, headers=bearer(app, "scientist"))
    assert too_long.status_code == 400 and "at the latest" in too_long.get_json()["error"][
        "message"]
    other = app.test_client().post(url, json={"hours": 2}, headers=bearer(app, "neutron"))
    assert other.status_code == 404
    answer = app.test_client().post(url, json={"hours": 8}, headers=bearer(app, "scientist"))
    assert answer.status_code == 200
    until = datetime.fromisoformat(answer.get_json()["lifetime"]["keep_running_until"])
    assert 8 * H - 2 * MIN < until - utcnow() <= 8 * H
    assert "kept running until" in machine(app, machine_id).events[-1].message
    assert stops_at(app, clock, provider, machine_id, ready_at + 241 * MIN) == "ready"
    assert stops_at(app, clock, provider, machine_id, until + 239 * MIN) == "ready"
    assert stops_at(app, clock, provider, machine_id, until + 241 * MIN) == "stopping"
    again = app.test_client().post(url, json={"hours": 1}, headers=bearer(app, "scientist"))
    assert again.status_code == 409  # only a ready machine


def test_the_page_offers_keep_running_and_the_owner_can_stop_keeping(app: Flask) -> None:
    clock, provider, machine_id, ready_at = idle_test_machine(app)
    client = app.test_client()
    sign_in(client, "scientist", "scientist-demo")
    page = client.get(f"/machines/{machine_id}").get_data(as_text=True)
    assert 'id="keep-running"' in page and '<option value="24">24 h</option>' in page
    token = csrf_from(client, f"/machines/{machine_id}")
    client.post(f"/machines/{machine_id}/keep-running", data={"hours": "4",
                                                              "csrf_token": token})
    page = client.get(f"/machines/{machine_id}").get_data(as_text=True)
    assert 'id="kept-running"' in page and 'id="keep-running"' not in page
    client.post(f"/machines/{machine_id}/keep-running", data={"hours": "0",
                                                              "csrf_token": token})
    assert 'id="kept-running"' not in client.get(f"/machines/{machine_id}").get_data(
        as_text=True)
    assert stops_at(app, clock, provider, machine_id, ready_at + 241 * MIN) == "stopping"


def give_report_token(app: Flask, machine_id: str, token: str) -> None:
    """Test set-up: the machine traded its bootstrap token for ``token`` (as a VM does)."""
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        db.add(MachineContext(machine_id=machine_id, token_hash=token_digest("bootstrap"),
                              expires_at=utcnow() + H, used_at=utcnow(),
                              report_token_hash=token_digest(token), reported_status="ready"))


def test_the_agents_activity_report_counts_only_with_the_report_token(app: Flask) -> None:
    clock, provider, machine_id, ready_at = idle_test_machine(app)
    give_report_token(app, machine_id, "report-secret")
    url = f"/api/v1/context/{machine_id}/activity"
    client = app.test_client()
    refused = client.post(url, json={"cpu_percent": 90.0, "sessions": 1},
                          headers={"Authorization": "Bearer bootstrap"})
    assert refused.status_code == 403
    quiet = client.post(url, json={"cpu_percent": 1.5, "sessions": 0},
                        headers={"Authorization": "Bearer report-secret"})
    assert quiet.status_code == 202 and quiet.get_json()["active"] is False
    assert stops_at(app, clock, provider, machine_id, ready_at + 100 * MIN) == "ready"
    busy = client.post(url, json={"cpu_percent": 180.0, "sessions": 0, "detail": "refmac5"},
                       headers={"Authorization": "Bearer report-secret"})
    assert busy.status_code == 202 and busy.get_json()["active"] is True
    reported = utcnow()  # the report's time is the portal's clock
    assert stops_at(app, clock, provider, machine_id, reported + 239 * MIN) == "ready"
    assert stops_at(app, clock, provider, machine_id, reported + 241 * MIN) == "stopping"


def test_an_unfinished_hpc_job_from_the_machine_holds_off_the_idle_stop(app: Flask) -> None:
    clock, provider, machine_id, ready_at = idle_test_machine(app)
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        user = db.scalar(select(User).where(User.username == "scientist"))
        assert user is not None
        db.add(HpcJob(user_id=user.id, cluster="hpc", slurm_job_id=41, machine_id=machine_id,
                      name="refine", state="RUNNING", work_dir="/tmp", output_path="/tmp/o"))
    # no cluster configured here: the job's recorded state counts
    assert stops_at(app, clock, provider, machine_id, ready_at + 300 * MIN) == "ready"
    page = admin_client(app).get("/admin/lifetimes").get_data(as_text=True)
    assert f'data-machine="{machine_id}"' in page.split('id="idle-machines"')[1]
    with unit_of_work(app.extensions["daaas"].session_factory) as db:
        db.execute(update(HpcJob).where(HpcJob.slurm_job_id == 41).values(state="COMPLETED"))
    assert stops_at(app, clock, provider, machine_id, ready_at + 301 * MIN) == "stopping"


def test_the_lifetimes_page_lists_idle_machines_with_idle_since_and_requests(
        app: Flask) -> None:
    _clock, _provider, machine_id, ready_at = idle_test_machine(app)
    client = admin_client(app)
    page = client.get("/admin/lifetimes").get_data(as_text=True)
    idle = page.split('id="idle-machines"')[1].split("</table>")[0]
    assert f'data-machine="{machine_id}"' in idle and ready_at.strftime("%Y-%m-%d %H:%M") in idle
    assert 'id="extension-requests"' not in page and 'id="no-requests"' in page
    assert app.test_client().get("/admin/lifetimes").status_code in (302, 303)


def test_a_machine_stopped_as_idle_is_deleted_at_its_end_after_its_last_warning(
        app: Flask) -> None:
    clock, provider = Clock(), SessionFolderProvider(var(app))
    machine_id = ready_machine(app, clock, provider)
    ready_at, end = machine(app, machine_id).state_changed_at, machine(app, machine_id).expires_at
    for minutes in (241, 242, 243):  # stop asked, provider stops, poll sees it stopped
        clock.now = ready_at + minutes * MIN
        policy_reconciler(app, clock, provider).run_once()
    assert machine(app, machine_id).state == "stopped"
    worker = policy_reconciler(app, clock, provider)
    clock.now = end - 47 * H
    assert worker.run_once().warned == [machine_id]
    clock.now = end - 1 * H
    assert worker.run_once().warned == [machine_id]  # the last warning, 2 h before
    assert machine(app, machine_id).state == "stopped"
    clock.now = end + 1 * MIN
    worker.run_once()
    worker.run_once()
    assert machine(app, machine_id).state == "deleted"
    kinds = [n.kind for n in outbox(app)]
    assert kinds[-4:] == ["idle_stopped", "expiry_warning", "expiry_warning", "expired"], kinds
    assert (var(app) / "kept-homes" / machine_id / "results" / "refined.pdb").exists()
