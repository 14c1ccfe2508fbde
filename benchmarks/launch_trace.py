"""How much of the project one launch crosses: distinct files and functions, step by step.

    .venv/bin/python benchmarks/launch_trace.py [--verbose]

Drives one whole launch of the shipped ``ccp4`` environment in-process, through the portal's
own entry points, on a fresh SQLite database: intent (``request_launch``), claim + context +
provider launch (one reconciler cycle), phone home (the VM's bootstrap exchange and its
``ready`` report over the HTTP API), ready (the next reconciler cycle), access token
(``issue_desktop_token``) and desktop (the proxy spending the token). The cloud is a
cloud-init double built on the in-memory provider, the way the contextualisation tests do it.

Measured for issue 11 (doubles not counted): before the restructuring 34 files, 175 functions,
55 caller -> callee file pairs; after it 35 files, 171 functions, 59 pairs (one file and two
pairs of them the API's request-body parsing added at the same time).

A first launch runs untraced (imports, caches); a second one is traced with
:func:`sys.setprofile`. Counted are the Python functions defined in the project's own folders
(portal/, catalogue/, contextualisation/, cvmfs/, vm_images/) that were called (compiled Jinja
templates are not counted); the figures
printed are per step and for the whole launch, plus the number of distinct caller → callee
file pairs (how much the code goes back and forth between files).
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import yaml
from flask import Flask

from daaas.portal import create_app
from daaas.portal.access.service import consume_token, issue_desktop_token
from daaas.portal.auth.service import get_user
from daaas.portal.config import load_settings, resolve_secret_key
from daaas.portal.db import (
    make_engine,
    make_session_factory,
    unit_of_work,
    worker_session_factory,
)
from daaas.portal.demo import create_demo_users
from daaas.portal.machines import service
from daaas.portal.machines.models import Machine
from daaas.portal.machines.reconciler import Reconciler
from daaas.portal.migrate import upgrade
from daaas.portal.providers import PROVIDERS, LaunchSpec

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the provider doubles live in the tests' support module

from tests.support.providers import InMemoryProvider, NeverReadyProvider  # noqa: E402

PROJECT = tuple(str(ROOT / folder) + "/" for folder in
                ("portal", "catalogue", "contextualisation", "cvmfs", "vm_images"))


class CloudInitCloud(NeverReadyProvider):
    """Machines stay RUNNING until they report; each LaunchSpec is kept like a server's
    user-data."""

    name = "trace-cloud-init"
    uses_cloud_init = True

    def __init__(self) -> None:
        super().__init__()
        self.specs: dict[str, LaunchSpec] = {}

    def launch(self, spec: LaunchSpec) -> None:
        """Keep the spec, then launch as the in-memory provider does."""
        self.specs[spec.machine_id] = spec
        super().launch(spec)


@dataclass
class Trace:
    """What one traced stretch of code called: functions by file, and caller → callee files."""

    functions: set[tuple[str, str]] = field(default_factory=set)
    edges: set[tuple[str, str]] = field(default_factory=set)

    @property
    def files(self) -> set[str]:
        """Return the project files whose functions were called. Raises nothing."""
        return {path for path, _ in self.functions}

    def merge(self, other: Trace) -> None:
        """Add ``other``'s functions and edges to this trace. Raises nothing."""
        self.functions |= other.functions
        self.edges |= other.edges


def _project_file(frame: FrameType | None) -> str | None:
    """Return the project-relative path of the frame's code, or None outside the project."""
    if frame is None:
        return None
    path = str(Path(frame.f_code.co_filename).resolve())
    if not path.startswith(PROJECT) or not path.endswith(".py"):
        return None
    return str(Path(path).relative_to(ROOT))


@contextmanager
def traced(trace: Trace) -> Iterator[None]:
    """Record every project function called inside the block into ``trace``."""
    def profile(frame: FrameType, event: str, _arg: Any) -> None:
        if event != "call":
            return
        path = _project_file(frame)
        if path is None:
            return
        code = frame.f_code
        trace.functions.add((path, getattr(code, "co_qualname", code.co_name)))
        caller = frame.f_back
        while caller is not None and _project_file(caller) is None:
            caller = caller.f_back  # through the libraries (Flask, SQLAlchemy) in between
        caller_path = _project_file(caller)
        if caller_path is not None and caller_path != path:
            trace.edges.add((caller_path, path))

    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(None)


def make_portal(folder: Path) -> Flask:
    """Return a portal on a fresh, migrated SQLite database with the demo users."""
    url = f"sqlite:///{folder / 'portal.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    settings = load_settings({"database_url": url, "var_dir": str(folder / "var")}, environ={})
    with unit_of_work(make_session_factory(engine)) as db:
        create_demo_users(db, settings)
    engine.dispose()
    with PROVIDERS.registered("memory", InMemoryProvider):
        return create_app({"database_url": url, "var_dir": str(folder / "var"),
                           "secret_key": "launch-trace-secret", "provider": "memory"})


def bootstrap_token(user_data: bytes) -> str:
    """Return the bootstrap token as the VM reads it from /etc/daaas/bootstrap.json."""
    if user_data[:2] == b"\x1f\x8b":
        user_data = gzip.decompress(user_data)
    files = {entry["path"]: entry for entry in yaml.safe_load(user_data)["write_files"]}
    token: str = json.loads(files["/etc/daaas/bootstrap.json"]["content"])["token"]
    return token


def launch_steps(app: Flask, cloud: CloudInitCloud,
                 worker: Reconciler) -> list[tuple[str, Callable[[], None]]]:
    """Return the named steps of one launch, each a callable run in order."""
    rt = app.extensions["daaas"]
    client = app.test_client()
    state: dict[str, str] = {}

    def intent() -> None:
        with unit_of_work(rt.session_factory) as db:
            machine = service.request_launch(db, rt.settings, rt.catalogue,
                                             get_user(db, "scientist"), "ccp4")
            state["id"] = machine.id

    def claim_context_provider_launch() -> None:
        worker.run_once()
        assert _state(app, state["id"]) == "provisioning", _state(app, state["id"])

    def phone_home() -> None:
        machine_id = state["id"]
        user_data = cloud.specs[machine_id].user_data
        assert user_data is not None
        answer = client.post(f"/api/v1/context/{machine_id}/bootstrap",
                             json={"token": bootstrap_token(user_data)})
        assert answer.status_code == 200, answer.get_data(as_text=True)
        reported = client.post(f"/api/v1/context/{machine_id}/status", json={"status": "ready"},
                               headers={"Authorization":
                                        f"Bearer {answer.get_json()['report_token']}"})
        assert reported.status_code == 202, reported.get_data(as_text=True)

    def ready() -> None:
        worker.run_once()
        assert _state(app, state["id"]) == "ready", _state(app, state["id"])

    def access_token() -> None:
        with unit_of_work(rt.session_factory) as db:
            grant = issue_desktop_token(db, rt.settings, cloud, get_user(db, "scientist"),
                                        state["id"])
            state["token"] = grant.token

    def desktop() -> None:
        assert consume_token(rt.session_factory, state["token"]) is not None

    return [("intent", intent),
            ("claim + context + provider launch", claim_context_provider_launch),
            ("phone home", phone_home), ("ready", ready), ("access token", access_token),
            ("desktop", desktop)]


def _state(app: Flask, machine_id: str) -> str:
    with app.extensions["daaas"].session_factory() as db:
        machine = db.get(Machine, machine_id)
        assert machine is not None
        return str(machine.state)


def measure(folder: Path) -> list[tuple[str, Trace]]:
    """Run one untraced launch, then one traced; return each step's trace."""
    app = make_portal(folder)
    settings = app.extensions["daaas"].settings
    cloud = CloudInitCloud()
    worker = Reconciler(worker_session_factory(settings.effective_database_url), cloud,
                        secret_key=resolve_secret_key(settings), ready_timeout_seconds=600,
                        settings=settings)
    for _, step in launch_steps(app, cloud, worker):  # warm up: imports and caches
        step()
    results = []
    for name, step in launch_steps(app, cloud, worker):
        trace = Trace()
        with traced(trace):
            step()
        results.append((name, trace))
    app.extensions["daaas"].engine.dispose()
    return results


def main() -> None:
    """Print the figures of one launch."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="list the files and functions")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        results = measure(Path(folder))
    total = Trace()
    print(f"{'step':<36} {'files':>6} {'functions':>10} {'file pairs':>11}")
    for name, trace in results:
        total.merge(trace)
        print(f"{name:<36} {len(trace.files):>6} {len(trace.functions):>10} "
              f"{len(trace.edges):>11}")
    print(f"{'whole launch':<36} {len(total.files):>6} {len(total.functions):>10} "
          f"{len(total.edges):>11}")
    if args.verbose:
        for path in sorted(total.files):
            names = sorted(name for file, name in total.functions if file == path)
            print(f"\n{path} ({len(names)})\n  " + "\n  ".join(names))


if __name__ == "__main__":
    main()
