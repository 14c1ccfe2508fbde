"""/metrics: after real launches on the in-memory provider, scraped over HTTP and parsed with
prometheus_client's own parser; who may scrape; the statements one scrape costs; the shipped
Grafana dashboard and alert rules name only exported metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from sqlalchemy import event, func, select

from daaas.portal.db import unit_of_work, worker_session_factory
from daaas.portal.machines.models import Machine
from daaas.portal.machines.reconciler import GONE_REASON
from daaas.portal.machines.service import transition
from daaas.portal.machines.states import State
from daaas.portal.machines.worker import make_reconciler
from daaas.portal.metrics.collect import METRICS, STATEMENTS, scrape
from daaas.portal.metrics.worker import MeasuredReconciler, WorkerMetrics, metrics_folder
from daaas.portal.runtime import runtime
from tests.support.machines import SECRET_KEY, ManualClock, launch, machine, start_worker, wait_for
from tests.support.providers import FailingProvider, NeverReadyProvider
from tests.support.web import served

TOKEN = "scrape-token-for-tests"
DOCS = Path(__file__).resolve().parents[2] / "docs"
PHASES = ("queue", "provision", "contextualise", "total")


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The conftest portal on the in-memory provider, with a metrics token (and room for
    four machines)."""
    return {**settings_override, "provider": "memory", "metrics_token": TOKEN,
            "max_machines_per_user": 10}


def samples(text: str) -> list[Sample]:
    """Return every sample of a text exposition, parsed by prometheus_client."""
    return [sample for family in text_string_to_metric_families(text)
            for sample in family.samples]


def value(found: list[Sample], name: str, **labels: str) -> float:
    """Return the one sample named ``name`` whose labels include ``labels``."""
    matching = [s.value for s in found
                if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    assert len(matching) == 1, f"{name} {labels}: {len(matching)} samples"
    return matching[0]


def get(base: str, token: str | None = TOKEN) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(f"{base}/metrics", headers=headers, timeout=30)


def test_after_a_real_launch_the_scrape_matches_the_database(app: Flask) -> None:
    rt = runtime(app)
    worker = make_reconciler(rt)  # as `daaas worker` and `daaas serve` build it
    assert isinstance(worker, MeasuredReconciler)
    ready = launch(app)
    waiting = launch(app, environment="ccp4")
    worker.run_once()  # launches both (requested -> provisioning)
    worker.run_once()  # polls: both up and ready
    with unit_of_work(rt.session_factory) as db:  # its owner deletes one
        machine = db.get(Machine, waiting)
        assert machine is not None
        transition(db, machine, State.DELETING, "the owner deleted it")
    with rt.session_factory() as db:
        assert db.get(Machine, ready).state == State.READY.value  # type: ignore[union-attr]
        in_db = {(state, env): count for state, env, count in db.execute(
            select(Machine.state, Machine.environment_name, func.count())
            .group_by(Machine.state, Machine.environment_name))}

    with served(app) as base:
        assert get(base, token=None).status_code == 401
        wrong = get(base, token="not-the-token")
        assert wrong.status_code == 401 and "metrics_token" in wrong.text
        response = get(base)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    found = samples(response.text)

    # machines by state and environment: every state present, the counts the database's
    machine_samples = [s for s in found if s.name == "daaas_machines"]
    assert {s.labels["state"] for s in machine_samples} == {state.value for state in State}
    for sample in machine_samples:
        key = (sample.labels["state"], sample.labels["environment"])
        assert sample.value == in_db.get(key, 0), key
    assert value(found, "daaas_machines", state="ready", environment="ccp4") == 1
    assert value(found, "daaas_machines", state="deleting", environment="ccp4") == 1
    assert value(found, "daaas_launches_total", environment="ccp4") == 2

    # each launch phase observed twice (two machines became ready), with +Inf = count
    for phase in PHASES:
        assert value(found, "daaas_launch_phase_seconds_count", phase=phase) == 2
        assert value(found, "daaas_launch_phase_seconds_bucket", phase=phase, le="+Inf") == 2
        assert value(found, "daaas_launch_phase_seconds_sum", phase=phase) >= 0

    # the worker's own figures, labelled with the worker
    calls = [s for s in found if s.name == "daaas_provider_calls_total"]
    assert {s.labels["worker"] for s in calls} == {worker.metrics.name}
    assert value(found, "daaas_provider_calls_total", operation="launch") == 2
    assert value(found, "daaas_provider_calls_total", operation="poll") == 2  # one a cycle
    assert value(found, "daaas_provider_call_seconds_count", operation="launch") == 2
    assert value(found, "daaas_reconciler_cycle_seconds_count", kind="full") == 2
    assert value(found, "daaas_capacity_sessions") == 8
    assert value(found, "daaas_capacity_sessions_free") == 6
    assert not [s for s in found if s.name == "daaas_provider_errors_total"]


def test_the_phase_histograms_have_one_observation_after_one_launch(app: Flask) -> None:
    rt = runtime(app)
    worker = make_reconciler(rt)
    machine_id = launch(app)
    worker.run_once()
    worker.run_once()
    with rt.session_factory() as db:
        assert db.get(Machine, machine_id).state == State.READY.value  # type: ignore[union-attr]
    with served(app) as base:
        found = samples(get(base).text)
    for phase in PHASES:
        assert value(found, "daaas_launch_phase_seconds_count", phase=phase) == 1
    assert value(found, "daaas_machines", state="ready", environment="ccp4") == 1
    assert value(found, "daaas_machines", state="requested", environment="ccp4") == 0
    # every metric the docs promise is exported (the GPU capacity needs a provider with GPUs,
    # failures and provider errors a failure, the HPC figures a cluster, the warm pools' a pool:
    # tests/integration/test_warm_pools.py)
    names = {sample.name for sample in samples(get_text(app))}
    missing = {name for name in METRICS
               if not any(n == name or n.startswith(f"{name}_") for n in names)}
    assert missing == {"daaas_capacity_gpus_free", "daaas_capacity_gpus",
                       "daaas_machine_failures_total", "daaas_provider_errors_total",
                       "daaas_hpc_submissions_total", "daaas_hpc_jobs", "daaas_pool_hits_total",
                       "daaas_pool_misses_total", "daaas_pool_ready", "daaas_pool_starting",
                       "daaas_pool_size"}


def get_text(app: Flask) -> str:
    with served(app) as base:
        return get(base).text


def test_failures_by_reason_and_provider_errors(app: Flask) -> None:
    rt = runtime(app)
    failing = MeasuredReconciler(worker_session_factory(rt.settings.effective_database_url),
                                 FailingProvider(fail_on="launch"), secret_key=SECRET_KEY,
                                 ready_timeout_seconds=600, settings=rt.settings,
                                 metrics=WorkerMetrics(metrics_folder(rt.settings), "failing"))
    refused = launch(app)
    failing.run_once()
    clock = ManualClock()
    slow = MeasuredReconciler(worker_session_factory(rt.settings.effective_database_url),
                              NeverReadyProvider(), secret_key=SECRET_KEY,
                              ready_timeout_seconds=600, settings=rt.settings, clock=clock,
                              metrics=WorkerMetrics(metrics_folder(rt.settings), "slow"))
    late = launch(app)
    slow.run_once()
    slow.run_once()  # contextualising, never ready
    clock.now += timedelta(seconds=601)
    slow.run_once()
    gone = launch(app, environment="ccp4")
    with unit_of_work(rt.session_factory) as db:
        machine = db.get(Machine, gone)
        assert machine is not None
        transition(db, machine, State.ERROR, GONE_REASON)
    with rt.session_factory() as db:
        for machine_id in (refused, late):
            assert db.get(Machine, machine_id).state == State.ERROR.value  # type: ignore[union-attr]
    found = samples(get_text(app))
    assert value(found, "daaas_machine_failures_total", stage="requested",
                 reason="launch_refused") == 1
    assert value(found, "daaas_machine_failures_total", stage="requested", reason="gone") == 1
    assert value(found, "daaas_machine_failures_total", stage="contextualising",
                 reason="timeout") == 1
    assert value(found, "daaas_provider_errors_total", operation="launch",
                 error="LaunchFailed", worker="failing") == 1
    assert value(found, "daaas_provider_calls_total", operation="launch", worker="slow") == 1


def test_a_worker_process_and_two_web_processes_agree(app: Flask,
                                                      settings_override: dict[str, Any]) -> None:
    """A real `daaas worker` launches; two separately built portals (as two web processes)
    scrape the same database figures, and both see the worker's own figures under its pid."""
    from daaas.portal import create_app

    worker = start_worker(settings_override, "tests.support.providers:InMemoryProvider",
                          stdout=subprocess.DEVNULL, DAAAS_START_WEBSOCKIFY="false")
    other = create_app(settings_override)
    try:
        machine_id = launch(app)
        wait_for(lambda: machine(app, machine_id).state == State.READY.value, 60,
                 "the worker to make the machine ready")
        time.sleep(1)  # a cycle after ready: the worker's file is written at each cycle's end
        scrapes = []
        for portal in (app, other):
            with served(portal) as base:
                scrapes.append(samples(get(base).text))
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        other.extensions["daaas"].engine.dispose()
    same = ("daaas_machines", "daaas_launches_total", "daaas_launch_phase_seconds_count",
            "daaas_launch_phase_seconds_bucket", "daaas_launch_phase_seconds_sum")
    first, second = ([s for s in found if s.name in same] for found in scrapes)
    assert first == second and first
    for found in scrapes:
        assert value(found, "daaas_launch_phase_seconds_count", phase="total") == 1
        assert value(found, "daaas_provider_calls_total", operation="launch",
                     worker=f"{socket.gethostname()}-{worker.pid}") == 1
        assert value(found, "daaas_reconciler_cycle_seconds_count", kind="full") >= 2


def test_a_starting_worker_forgets_workers_gone_for_a_day(app: Flask) -> None:
    rt = runtime(app)
    folder = metrics_folder(rt.settings)
    folder.mkdir()
    old, recent = folder / "worker-gone-1.prom", folder / "worker-other-2.prom"
    for path in (old, recent):
        path.write_text("# nothing\n", encoding="utf-8")
    a_day_ago = time.time() - 86400 - 60
    os.utime(old, (a_day_ago, a_day_ago))
    worker = make_reconciler(rt)
    assert isinstance(worker, MeasuredReconciler)
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [recent.name, worker.metrics.path.name])


@pytest.mark.parametrize(("settings", "status", "words"), [
    ({"metrics_token": ""}, 404, "Metrics are off"),
    ({"metrics_token": "", "metrics_networks": "10.0.0.0/8"}, 403, "metrics_networks"),
    ({"metrics_token": "", "metrics_networks": "10.0.0.0/8, 127.0.0.1"}, 200, "daaas_machines"),
    ({"metrics_networks": "127.0.0.0/8"}, 401, "metrics_token"),
])
def test_who_may_scrape(settings_override: dict[str, Any], settings: dict[str, str],
                        status: int, words: str) -> None:
    from daaas.portal import create_app

    app = create_app({**settings_override, **settings})
    try:
        with served(app) as base:
            response = get(base, token=None)
    finally:
        app.extensions["daaas"].engine.dispose()
    assert response.status_code == status
    assert words in response.text


def test_a_bad_network_setting_is_refused_at_start(settings_override: dict[str, Any]) -> None:
    from daaas.portal import create_app
    from daaas.portal.config import ConfigError

    with pytest.raises(ConfigError, match="metrics_networks"):
        create_app({**settings_override, "metrics_networks": "10.0.0.0/8, nonsense"})


@pytest.fixture
def statements(app: Flask) -> Iterator[list[str]]:
    seen: list[str] = []
    engine = runtime(app).engine

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    yield seen
    event.remove(engine, "before_cursor_execute", count)


def test_a_scrape_costs_the_same_statements_whatever_the_number_of_machines(
        app: Flask, statements: list[str]) -> None:
    rt = runtime(app)
    worker = make_reconciler(rt)
    counts = []
    for _ in range(2):
        launch(app)
        launch(app, environment="ccp4")
        worker.run_once()
        worker.run_once()
        statements.clear()
        with rt.engine.connect() as connection:
            text = scrape(connection, rt.settings).decode()
        counts.append(len(statements))
        machines = [s for s in statements if re.search(r"FROM machines\b", s)]
        # one grouped query for the machines, one for the warm pools' machines
        assert len(machines) == 2 and all("GROUP BY" in s for s in machines)
    assert counts == [STATEMENTS, STATEMENTS]
    assert value(samples(text), "daaas_launches_total", environment="ccp4") == 4


def expressions_in_docs() -> list[str]:
    """Return every PromQL expression of the shipped alert rules and dashboard."""
    rules = yaml.safe_load((DOCS / "prometheus-alerts.yml").read_text(encoding="utf-8"))
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {"DaaasProviderErrorsRising", "DaaasLaunchesStuck",
            "DaaasGpuCapacityExhausted"} <= {rule["alert"] for rule in alerts}
    exprs = [str(rule["expr"]) for rule in alerts]
    dashboard = json.loads((DOCS / "grafana-dashboard.json").read_text(encoding="utf-8"))
    panels = dashboard["panels"]
    assert dashboard["title"] and panels
    exprs += [target["expr"] for panel in panels for target in panel.get("targets", [])]
    return exprs


def test_the_dashboard_and_alerts_name_only_exported_metrics() -> None:
    exported = set(METRICS)
    for name in METRICS:  # a histogram's series
        exported |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
    exprs = expressions_in_docs()
    assert len(exprs) >= 10
    for expr in exprs:
        named = set(re.findall(r"\bdaaas_[a-z_]+", expr))
        assert named, expr
        assert named <= exported, f"{expr}: {named - exported} not exported"


def test_promtool_accepts_the_rules_and_a_real_scrape(app: Flask) -> None:
    """Prometheus's own checker: the alert rules parse as PromQL, and a scrape after a launch
    passes its metric lint (names, units, help, types). Skipped without promtool locally,
    failed in CI (.ci/setup.sh installs Debian's prometheus)."""
    if shutil.which("promtool") is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is missing: install Debian's prometheus package")
        pytest.skip("promtool not installed (Debian's prometheus package)")
    rt = runtime(app)
    worker = make_reconciler(rt)
    launch(app)
    worker.run_once()
    worker.run_once()
    rules = subprocess.run(["promtool", "check", "rules", str(DOCS / "prometheus-alerts.yml")],
                           capture_output=True, text=True, timeout=60)
    assert rules.returncode == 0 and "SUCCESS: 4 rules found" in rules.stdout, rules.stderr
    lint = subprocess.run(["promtool", "check", "metrics"], input=get_text(app),
                          capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0 and not lint.stdout.strip() and not lint.stderr.strip(), \
        lint.stdout + lint.stderr
