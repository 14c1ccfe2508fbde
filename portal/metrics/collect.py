"""The figures of one scrape, read when Prometheus asks.

Everything the database knows is counted from it at scrape time, in a fixed number of
grouped queries (:data:`STATEMENTS`) whatever the number of machines: every web process on
every host answers the same figures, a restart loses nothing, and nothing is counted twice.
Counters are counts of rows that are never removed (machines, their events, bootstrap
contexts, HPC jobs), so they only grow. The launch phase histograms are the per-phase
durations :mod:`daaas.portal.machines.timings` derives from the machines' events (first entry
into each state), bucketed here. The capacity comes from the file the reconciler writes
(:mod:`daaas.portal.machines.capacity`); the workers' own figures from their files
(:mod:`daaas.portal.metrics.worker`).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from sqlalchemy import ColumnElement, case, func, literal, or_, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import QueryableAttribute

from daaas.portal.bootstrap.models import MachineContext
from daaas.portal.config import Settings
from daaas.portal.db import utcnow
from daaas.portal.hpc.models import HpcJob
from daaas.portal.machines.capacity import capacity_path, describe_flavors, read_capacity
from daaas.portal.machines.models import Machine, MachineEvent
from daaas.portal.machines.reconciler import GONE_REASON, STORAGE_REASON
from daaas.portal.machines.states import State
from daaas.portal.machines.timings import PHASES
from daaas.portal.metrics.worker import metrics_folder
from daaas.portal.pools.service import MISS_MESSAGE, read_figures

log = logging.getLogger(__name__)
#: Statements one scrape runs (machines, failures, phases, bootstrap, HPC, pools, pool misses).
STATEMENTS = 7
#: Buckets of the launch phase histograms (seconds).
PHASE_BUCKETS = (1.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0)
#: A machine's desktop counts as connected when the desktop proxy wrote ``desktop_seen_at``
#: this recently (it writes it when a connection opens, once a minute while it lasts and when
#: it closes).
CONNECTED_WITHIN = timedelta(seconds=120)
#: A worker's file older than this is left out (the worker is gone or hangs).
WORKER_STALE_SECONDS = 600.0
#: Phase label values, in the order of :data:`daaas.portal.machines.timings.PHASES`
#: ("total_to_ready" is "total": click to ready).
PHASE_LABELS = {"queue": "queue", "provision": "provision", "contextualise": "contextualise",
                "total_to_ready": "total"}
#: How a failure's message and the state it failed from become a reason (checked in order).
TIMEOUT_PREFIX = "The machine did not become ready within"

#: Every metric family /metrics exports (the alert rules may name only these).
DATABASE_METRICS = (
    "daaas_machines", "daaas_machines_oldest_in_state_seconds", "daaas_launches_total",
    "daaas_machine_failures_total", "daaas_launch_phase_seconds",
    "daaas_desktops_connected", "daaas_bootstrap_contexts_total",
    "daaas_bootstrap_exchanges_total", "daaas_bootstrap_reports_total",
    "daaas_hpc_submissions_total", "daaas_hpc_jobs", "daaas_pool_hits_total",
    "daaas_pool_misses_total", "daaas_pool_ready", "daaas_pool_starting", "daaas_pool_size")
CAPACITY_METRICS = (
    "daaas_capacity_gpus_free", "daaas_capacity_gpus", "daaas_capacity_sessions_free",
    "daaas_capacity_sessions", "daaas_capacity_age_seconds")
WORKER_METRICS = (
    "daaas_reconciler_cycle_seconds", "daaas_reconciler_cycle_failures_total",
    "daaas_reconciler_last_cycle_timestamp_seconds", "daaas_provider_calls_total",
    "daaas_provider_call_seconds", "daaas_provider_errors_total")
METRICS = DATABASE_METRICS + CAPACITY_METRICS + WORKER_METRICS


def scrape(connection: Connection, settings: Settings, environments: Iterable[str] = (),
           now: datetime | None = None) -> bytes:
    """Return the text exposition of every metric, read now on ``connection``.

    ``environments`` (the catalogue's names) get zero gauges even without machines. Raises
    the database's error when a query fails.
    """
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PortalCollector(connection, settings, tuple(environments),
                                      now or utcnow()))
    return generate_latest(registry)


class PortalCollector(Collector):
    """Yields the metric families of one scrape (see the module's docstring)."""

    def __init__(self, connection: Connection, settings: Settings,
                 environments: tuple[str, ...], now: datetime) -> None:
        self.connection = connection
        self.settings = settings
        self.environments = environments
        self.now = now

    def collect(self) -> Iterator[Metric]:
        """Yield every family; raises the database's error when a query fails."""
        yield from self._machines()
        yield self._failures()
        yield self._phases()
        yield from self._bootstrap()
        yield from self._hpc()
        yield from self._pools()
        yield from self._capacity()
        yield from worker_families(metrics_folder(self.settings), time.time())

    def _machines(self) -> Iterator[Metric]:
        """Machines by state and environment, the oldest in each, the launches and the
        connected desktops: ONE grouped query."""
        cutoff = self.now - CONNECTED_WITHIN
        connected = func.sum(case((Machine.desktop_seen_at >= cutoff, 1), else_=0))
        rows = self.connection.execute(
            select(Machine.state, Machine.environment_name, func.count().label("machines"),
                   func.min(Machine.state_changed_at).label("oldest"),
                   connected.label("connected"))
            .group_by(Machine.state, Machine.environment_name)).all()
        machines = GaugeMetricFamily("daaas_machines", "Machines by state and environment.",
                                     labels=["state", "environment"])
        oldest = GaugeMetricFamily(
            "daaas_machines_oldest_in_state_seconds", "How long the machine longest in each "
            "state has been in it (seconds); absent for a state without machines.",
            labels=["state", "environment"])
        launches = CounterMetricFamily(
            "daaas_launches", "Machines launched (asked for), by environment.",
            labels=["environment"])
        desktops = GaugeMetricFamily(
            "daaas_desktops_connected", "Ready machines with a desktop connection open (seen "
            "by the desktop proxy within the last 2 minutes).", labels=["environment"])
        counts: dict[tuple[str, str], int] = defaultdict(int)
        launched: dict[str, int] = dict.fromkeys(self.environments, 0)
        open_desktops: dict[str, int] = dict.fromkeys(self.environments, 0)
        for row in rows:
            counts[row.state, row.environment_name] += row.machines
            launched[row.environment_name] = launched.get(row.environment_name, 0) + row.machines
            if row.state == State.READY.value:
                open_desktops[row.environment_name] = int(row.connected or 0)
            if row.oldest is not None:
                oldest.add_metric([row.state, row.environment_name],
                                  max(0.0, (self.now - row.oldest).total_seconds()))
        for environment in sorted(launched):
            for state in State:
                machines.add_metric([state.value, environment], counts[state.value, environment])
            launches.add_metric([environment], launched[environment])
            desktops.add_metric([environment], open_desktops.get(environment, 0))
        yield from (machines, oldest, launches, desktops)

    def _failures(self) -> Metric:
        """Machines that failed, by the state they failed in and a reason: one query."""
        reason = case(
            (MachineEvent.message == GONE_REASON, literal("gone")),
            (MachineEvent.message == STORAGE_REASON, literal("storage")),
            (MachineEvent.message.startswith(TIMEOUT_PREFIX), literal("timeout")),
            (MachineEvent.from_state == State.REQUESTED.value, literal("launch_refused")),
            (MachineEvent.from_state == State.CONTEXTUALISING.value, literal("setup_failed")),
            else_=literal("provider_error")).label("reason")
        rows = self.connection.execute(
            select(MachineEvent.from_state, Machine.environment_name, reason,
                   func.count().label("failures"))
            .join(Machine, Machine.id == MachineEvent.machine_id)
            .where(MachineEvent.to_state == State.ERROR.value)
            .group_by(MachineEvent.from_state, Machine.environment_name, reason)).all()
        failures = CounterMetricFamily(
            "daaas_machine_failures", "Machines that failed (moved to error), by the state "
            "they failed in (stage), environment and reason: launch_refused, provider_error, "
            "setup_failed, timeout, gone, storage.",
            labels=["stage", "environment", "reason"])
        for row in rows:
            failures.add_metric([row.from_state or "", row.environment_name, row.reason],
                                row.failures)
        return failures

    def _phases(self) -> Metric:
        """The launch phase histograms, bucketed by the database in ONE query: each machine's
        first entry into the four states of a launch (as
        :func:`daaas.portal.machines.timings.phase_timings` derives them), the seconds between
        them (each timestamp converted to seconds once), and per phase a count per bucket,
        the count and the sum."""
        wanted = sorted({state.value for _, start, end in PHASES for state in (start, end)})
        dialect = self.connection.dialect.name
        first = (select(*[func.min(case((MachineEvent.to_state == state,
                                         _epoch(MachineEvent.at, dialect)))).label(state)
                          for state in wanted])
                 .where(MachineEvent.to_state.in_(wanted))
                 .group_by(MachineEvent.machine_id).subquery())
        columns: list[ColumnElement[Any]] = []
        for _, start, end in PHASES:
            seconds = first.c[end.value] - first.c[start.value]
            columns += [func.sum(case((seconds <= bound, 1), else_=0)) for bound in PHASE_BUCKETS]
            columns += [func.count(seconds), func.coalesce(func.sum(seconds), 0)]
        row = self.connection.execute(select(*columns).select_from(first)).one()
        family = HistogramMetricFamily(
            "daaas_launch_phase_seconds", "Duration of each launch phase: queue (requested to "
            "provisioning), provision (to contextualising), contextualise (to ready) and total "
            "(the click to ready), from the machines' events.", labels=["phase"])
        width = len(PHASE_BUCKETS) + 2
        for index, (name, _, _) in enumerate(PHASES):
            values = [float(v or 0) for v in row[index * width:(index + 1) * width]]
            *cumulative, count, total = values
            buckets = [(_bound(b), c) for b, c in zip(PHASE_BUCKETS, cumulative, strict=True)]
            family.add_metric([PHASE_LABELS[name]], [*buckets, ("+Inf", count)],
                              sum_value=total)
        return family

    def _bootstrap(self) -> Iterator[Metric]:
        """Bootstrap tokens issued, exchanged and the machines' reports: one query."""
        rows = self.connection.execute(
            select(MachineContext.reported_status, func.count().label("contexts"),
                   func.count(MachineContext.used_at).label("exchanged"))
            .group_by(MachineContext.reported_status)).all()
        contexts = CounterMetricFamily(
            "daaas_bootstrap_contexts", "Cloud-init machines given a bootstrap token.")
        exchanges = CounterMetricFamily(
            "daaas_bootstrap_exchanges", "Bootstrap tokens a machine traded for its secrets.")
        reports = CounterMetricFamily(
            "daaas_bootstrap_reports", "Machines' set-up reports, by status.",
            labels=["status"])
        by_status = {"ready": 0, "failed": 0}
        for row in rows:
            if row.reported_status:
                by_status[row.reported_status] = by_status.get(row.reported_status, 0) \
                    + row.contexts
        contexts.add_metric([], sum(row.contexts for row in rows))
        exchanges.add_metric([], sum(row.exchanged for row in rows))
        for status, count in sorted(by_status.items()):
            reports.add_metric([status], count)
        yield from (contexts, exchanges, reports)

    def _hpc(self) -> Iterator[Metric]:
        """HPC jobs submitted through the portal and their last known states: one query."""
        rows = self.connection.execute(
            select(HpcJob.cluster, HpcJob.state, func.count().label("jobs"))
            .where(HpcJob.origin == "portal")  # not the jobs the worker found from elsewhere
            .group_by(HpcJob.cluster, HpcJob.state)).all()
        submitted = CounterMetricFamily(
            "daaas_hpc_submissions", "HPC jobs submitted through the portal, by cluster.",
            labels=["cluster"])
        jobs = GaugeMetricFamily("daaas_hpc_jobs", "HPC jobs by cluster and the state the "
                                 "portal last saw.", labels=["cluster", "state"])
        totals: dict[str, int] = {self.settings.hpc_cluster: 0} \
            if self.settings.hpc_slurmrestd_url else {}
        for row in rows:
            totals[row.cluster] = totals.get(row.cluster, 0) + row.jobs
            jobs.add_metric([row.cluster, row.state], row.jobs)
        for cluster, count in sorted(totals.items()):
            submitted.add_metric([cluster], count)
        yield from (submitted, jobs)

    def _pools(self) -> Iterator[Metric]:
        """Warm pools (issue 20): hits (launches a pooled machine served), misses (launches
        whose pool had none ready), the pooled machines ready and starting — two grouped
        queries — and each pool's size as the worker last applied it (its figures file)."""
        rows = self.connection.execute(
            select(Machine.environment_name, Machine.flavor, Machine.pool, Machine.state,
                   func.count().label("machines"), func.count(Machine.claimed_at).label("hits"))
            .where(or_(Machine.pool.is_not(None), Machine.claimed_at.is_not(None)))
            .group_by(Machine.environment_name, Machine.flavor, Machine.pool,
                      Machine.state)).all()
        missed = self.connection.execute(
            select(Machine.environment_name, Machine.flavor, func.count().label("misses"))
            .select_from(MachineEvent).join(Machine, Machine.id == MachineEvent.machine_id)
            .where(MachineEvent.message == MISS_MESSAGE)
            .group_by(Machine.environment_name, Machine.flavor)).all()
        figures = read_figures(self.settings, self.now)
        labels = ["environment", "flavor"]
        hits = CounterMetricFamily("daaas_pool_hits", "Launches served by a warm pool's "
                                   "machine, by environment and flavor.", labels=labels)
        misses = CounterMetricFamily("daaas_pool_misses", "Launches whose warm pool had no "
                                     "machine ready, by environment and flavor.", labels=labels)
        ready = GaugeMetricFamily("daaas_pool_ready", "Pooled machines ready to be claimed.",
                                  labels=labels)
        starting = GaugeMetricFamily("daaas_pool_starting", "Pooled machines being started.",
                                     labels=labels)
        size = GaugeMetricFamily("daaas_pool_size", "Each warm pool's size as the worker "
                                 "last applied it.", labels=labels)
        zero: dict[tuple[str, ...], int] = {tuple(key.split("/", 1)): 0 for key in figures}
        counts = {name: dict(zero) for name in ("hits", "misses", "ready", "starting")}
        live = {State.REQUESTED.value, State.PROVISIONING.value, State.CONTEXTUALISING.value}
        for row in rows:
            key: tuple[str, ...] = (row.environment_name, row.flavor)
            counts["hits"][key] = counts["hits"].get(key, 0) + row.hits
            if row.pool is not None and row.state == State.READY.value:
                counts["ready"][key] = counts["ready"].get(key, 0) + row.machines
            elif row.pool is not None and row.state in live:
                counts["starting"][key] = counts["starting"].get(key, 0) + row.machines
        for environment, flavor, count in missed:
            counts["misses"][environment, flavor] = count
        for name, family in (("hits", hits), ("misses", misses), ("ready", ready),
                             ("starting", starting)):
            for key, value in sorted(counts[name].items()):
                family.add_metric(list(key), value)
        for pool in sorted(figures.values(), key=lambda pool: pool.key):
            size.add_metric(pool.key.split("/", 1), pool.size)
        yield from (hits, misses, ready, starting, size)

    def _capacity(self) -> Iterator[Metric]:
        """The provider's capacity as the reconciler last read it (nothing when it is unknown
        or stale)."""
        known = read_capacity(capacity_path(self.settings), self.now)
        if known is None:
            return
        capacity = known.capacity
        gpu_type = _gpu_type(self.settings)
        if capacity.gpus_free is not None:
            free = GaugeMetricFamily("daaas_capacity_gpus_free", "GPUs free at the provider, "
                                     "by GPU type.", labels=["gpu_type"])
            free.add_metric([gpu_type], capacity.gpus_free)
            yield free
        if capacity.gpus_total is not None:
            total = GaugeMetricFamily("daaas_capacity_gpus", "GPUs the provider has in "
                                      "all, by GPU type.", labels=["gpu_type"])
            total.add_metric([gpu_type], capacity.gpus_total)
            yield total
        yield GaugeMetricFamily("daaas_capacity_sessions_free", "Machines that can still "
                                "start at the provider.", value=capacity.sessions_free)
        yield GaugeMetricFamily("daaas_capacity_sessions", "Machines the provider can "
                                "run in all.", value=capacity.sessions_total)
        yield GaugeMetricFamily("daaas_capacity_age_seconds", "Age of the capacity reading.",
                                value=max(0.0, (self.now - known.read_at).total_seconds()))


def _epoch(column: QueryableAttribute[datetime], dialect: str) -> ColumnElement[Any]:
    """Return SQL for ``column`` (a naive UTC timestamp, as :class:`daaas.portal.db.UTCDateTime`
    stores it) in seconds since an epoch; differences of two are durations in seconds."""
    if dialect == "postgresql":
        return func.date_part("epoch", column)  # double precision (extract: numeric)
    return func.julianday(column) * 86400.0


def _bound(value: float) -> str:
    return repr(float(value))


def _gpu_type(settings: Settings) -> str:
    """Return the GPU model(s) of the site's flavours ("NVIDIA A100"; several joined by
    " + "), "gpu" when no flavour names one: the provider reports one pool. Raises nothing."""
    models = sorted({size.gpu_model for size in describe_flavors(settings).values()
                     if size.gpus and size.gpu_model})
    return " + ".join(models) or "gpu"


def worker_families(folder: Path, now: float) -> Iterator[Metric]:
    """Yield the workers' figures from their files in ``folder`` (fresh ones only), one
    family per name with a ``worker`` label on every sample. Raises nothing: an unreadable
    file is logged and left out."""
    merged: dict[str, Metric] = {}
    try:
        files = sorted(folder.glob("worker-*.prom"))
    except OSError:
        files = []
    for path in files:
        try:
            if now - path.stat().st_mtime > WORKER_STALE_SECONDS:
                continue
            worker = path.stem.removeprefix("worker-")
            families = list(text_string_to_metric_families(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            log.warning("worker metrics in %s not read: %s", path, exc)
            continue
        for family in families:
            target = merged.setdefault(family.name, Metric(family.name, family.documentation,
                                                           family.type))
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                target.add_sample(sample.name, {**sample.labels, "worker": worker},
                                  sample.value)
    yield from merged.values()
