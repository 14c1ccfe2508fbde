"""Running the reconciler: as `daaas worker`, or as a thread of the embedded portal."""

from __future__ import annotations

import logging
import threading

from daaas.portal.audit.service import set_origin
from daaas.portal.config import Settings, resolve_secret_key
from daaas.portal.db import worker_session_factory
from daaas.portal.machines.reconciler import Reconciler
from daaas.portal.metrics.worker import MeasuredReconciler
from daaas.portal.runtime import Runtime

log = logging.getLogger(__name__)


def make_reconciler(runtime: Runtime) -> Reconciler:
    """Return a reconciler on the runtime's database and provider, its cycles and provider
    calls measured for /metrics (:mod:`daaas.portal.metrics.worker`)."""
    settings: Settings = runtime.settings
    factory = worker_session_factory(settings.effective_database_url)
    return MeasuredReconciler(factory, runtime.provider,
                      secret_key=resolve_secret_key(settings),
                      ready_timeout_seconds=settings.machine_ready_timeout_seconds,
                      settings=settings)


class WorkerThread(threading.Thread):
    """The reconciler in a daemon thread; adopts running machines first, then loops."""

    def __init__(self, runtime: Runtime) -> None:
        super().__init__(name="daaas-reconciler", daemon=True)
        self.reconciler = make_reconciler(runtime)
        self.interval = runtime.settings.reconcile_interval_seconds
        self.stop_event = threading.Event()

    def run(self) -> None:
        """Adopt or clean up what the provider runs, then reconcile until stopped."""
        set_origin("worker")  # audit events recorded by this thread come from the worker
        try:
            self.reconciler.adopt()
        except Exception:
            log.exception("adopting running machines failed; continuing")
        self.reconciler.run_forever(self.stop_event, self.interval)

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the loop to stop and wait for the current cycle to end."""
        self.stop_event.set()
        self.join(timeout)
