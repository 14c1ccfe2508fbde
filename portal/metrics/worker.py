"""What only a worker sees: its reconcile cycles and its provider calls.

Each worker (``daaas worker``, or the thread of ``daaas serve``) keeps these in a
:class:`~prometheus_client.CollectorRegistry` of its own and writes the registry's text
exposition to ``<var_dir>/metrics/worker-<host>-<pid>.prom`` after every cycle (atomically,
by rename), as the capacity is written to ``capacity.json``. The web process's scrape reads
every fresh file (:func:`daaas.portal.metrics.collect.worker_families`) and labels each
sample with its worker. Why not prometheus_client's multiprocess mode: it is chosen by an
environment variable read once when prometheus_client is imported, for the whole process,
so a process cannot serve two portals (the tests do) and the choice cannot come from the
portal's settings.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy.orm import Session, sessionmaker

from daaas.portal.config import Settings
from daaas.portal.db import utcnow
from daaas.portal.machines.reconciler import CycleReport, Reconciler
from daaas.portal.notifications.mail import Mailer
from daaas.portal.providers import Provider, ProviderError

log = logging.getLogger(__name__)
#: The folder under var_dir where workers write their figures.
FOLDER = "metrics"
#: The provider's operations that are timed and counted (everything else passes through).
OPERATIONS = frozenset({"launch", "poll", "delete", "delete_keeping_home", "stop", "start",
                        "capacity", "adopt_or_cleanup", "list_machine_ids"})
#: A worker's file not written for this long is removed when a worker starts (seconds).
FORGET_AFTER_SECONDS = 86400.0
#: Buckets of a provider call's duration (seconds).
CALL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
#: Buckets of a reconcile cycle's duration (seconds).
CYCLE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def metrics_folder(settings: Settings) -> Path:
    """Return the folder the workers write their figures to (not created). Raises nothing."""
    return settings.var_path / FOLDER


class WorkerMetrics:
    """One worker's figures and the file they are written to."""

    def __init__(self, folder: Path, name: str | None = None) -> None:
        """``name`` identifies the worker (default ``<host>-<pid>``); it is the file's name
        and the samples' ``worker`` label."""
        self.name = name or f"{socket.gethostname()}-{os.getpid()}"
        self.path = folder / f"worker-{self.name}.prom"
        self.registry = CollectorRegistry(auto_describe=True)
        self.cycle_seconds = Histogram(
            "daaas_reconciler_cycle_seconds", "Duration of a reconcile cycle: full (every "
            "interval) or asked (a launch or delete woke the worker).", ["kind"],
            buckets=CYCLE_BUCKETS, registry=self.registry)
        self.cycle_failures = Counter(
            "daaas_reconciler_cycle_failures", "Reconcile cycles that raised (logged; the "
            "next cycle retries).", ["kind"], registry=self.registry)
        self.last_cycle = Gauge(
            "daaas_reconciler_last_cycle_timestamp_seconds", "When the worker last finished "
            "a reconcile cycle (Unix time).", registry=self.registry)
        self.calls = Counter(
            "daaas_provider_calls", "Calls of the compute provider, by operation.",
            ["provider", "operation"], registry=self.registry)
        self.call_seconds = Histogram(
            "daaas_provider_call_seconds", "Duration of a compute provider call.",
            ["provider", "operation"], buckets=CALL_BUCKETS, registry=self.registry)
        self.errors = Counter(
            "daaas_provider_errors", "Provider calls that raised, by operation and error "
            "class (ProviderUnavailable, CapacityExhausted, LaunchFailed, ...).",
            ["provider", "operation", "error"], registry=self.registry)
        for kind in ("full", "asked"):  # present (at zero) before the first failure
            self.cycle_failures.labels(kind=kind)

    def forget_old_workers(self, now: float) -> None:
        """Remove the files of workers that wrote nothing for FORGET_AFTER_SECONDS (ended long
        ago; the scrape leaves them out after 10 minutes already). Never raises."""
        try:
            for path in self.path.parent.glob("worker-*.prom"):
                if now - path.stat().st_mtime > FORGET_AFTER_SECONDS:
                    path.unlink(missing_ok=True)
        except OSError as exc:
            log.warning("old worker metrics in %s not removed: %s", self.path.parent, exc)

    def write(self) -> None:
        """Write the figures to :attr:`path` (atomically). Never raises: a missed write
        costs one cycle's figures, never the cycle."""
        try:
            self.path.parent.mkdir(mode=0o700, exist_ok=True)
            temporary = self.path.with_name(f".{self.path.name}.tmp")
            temporary.write_bytes(generate_latest(self.registry))
            os.replace(temporary, self.path)
        except OSError as exc:
            log.warning("worker metrics not written to %s: %s", self.path, exc)


class MeasuredProvider:
    """Passes everything to the provider it wraps; times and counts its operations
    (:data:`OPERATIONS`) in :class:`WorkerMetrics`. Not a :class:`Provider` subclass on
    purpose: the base class's default methods would hide the wrapped provider's own."""

    def __init__(self, provider: Provider, metrics: WorkerMetrics) -> None:
        self._provider = provider
        self._metrics = metrics

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._provider, name)
        if name in OPERATIONS and callable(value):
            return self._measured(name, value)
        return value

    def _measured(self, operation: str, call: Callable[..., Any]) -> Callable[..., Any]:
        provider = self._provider.name

        def measured(*args: Any, **kwargs: Any) -> Any:
            metrics = self._metrics
            metrics.calls.labels(provider, operation).inc()
            started = time.perf_counter()
            try:
                return call(*args, **kwargs)
            except (ProviderError, OSError) as exc:
                metrics.errors.labels(provider, operation, type(exc).__name__).inc()
                raise
            finally:
                metrics.call_seconds.labels(provider, operation).observe(
                    time.perf_counter() - started)

        return measured


class MeasuredReconciler(Reconciler):
    """A :class:`Reconciler` whose cycles and provider calls are measured and written to
    ``<var_dir>/metrics/`` after each cycle."""

    def __init__(self, session_factory: sessionmaker[Session], provider: Provider, *,
                 secret_key: str, ready_timeout_seconds: float, settings: Settings,
                 clock: Callable[[], datetime] = utcnow, mailer: Mailer | None = None,
                 metrics: WorkerMetrics | None = None) -> None:
        """As :class:`Reconciler`; the settings are required (they say where to write).
        Raises ValueError as :class:`Reconciler` does."""
        self.metrics = metrics or WorkerMetrics(metrics_folder(settings))
        super().__init__(session_factory, cast(Provider, MeasuredProvider(provider,
                                                                          self.metrics)),
                         secret_key=secret_key, ready_timeout_seconds=ready_timeout_seconds,
                         clock=clock, settings=settings, mailer=mailer)
        for operation in ("launch", "poll", "delete", "capacity"):  # zero before any call
            self.metrics.calls.labels(provider.name, operation)
        self.metrics.forget_old_workers(time.time())
        self.metrics.write()

    def run_once(self, *, steady: bool = True) -> CycleReport:
        """Run a full cycle (:meth:`Reconciler.run_once`), measured; raises what it raises."""
        return self._measured("full", partial(super().run_once, steady=steady))

    def run_asked(self) -> CycleReport:
        """Run the asked-for part (:meth:`Reconciler.run_asked`), measured; raises what it
        raises."""
        return self._measured("asked", super().run_asked)

    def _measured(self, kind: str, cycle: Callable[[], CycleReport]) -> CycleReport:
        started = time.perf_counter()
        try:
            return cycle()
        except Exception:
            self.metrics.cycle_failures.labels(kind).inc()
            raise
        finally:
            self.metrics.cycle_seconds.labels(kind).observe(time.perf_counter() - started)
            self.metrics.last_cycle.set(time.time())
            self.metrics.write()
