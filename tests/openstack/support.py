"""Helpers for tests against the real OpenStack started by .ci/openstack.sh.

``DAAAS_TEST_OPENSTACK_CLOUD`` names the portal's cloud in clouds.yaml (``OS_CLIENT_CONFIG_FILE``);
the same file has ``<cloud>-admin`` (test set-up only) and ``<cloud>-quota`` (a member-only
project with a 1-core quota). Without the variable the tests skip locally and fail in CI.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import openstack
import pytest
from flask import Flask

from daaas.catalogue import Environment
from daaas.portal.config import resolve_secret_key
from daaas.portal.db import worker_session_factory
from daaas.portal.machines.reconciler import Reconciler
from daaas.portal.providers import ProviderState
from daaas.portal.providers.openstack import OpenStackProvider
from tests.integration.context_support import machine_row
from tests.openstack import support
from tests.support.environments import make_environment

IMAGE, CPU_FLAVOR, GPU_FLAVOR, HUGE_FLAVOR = "daaas-tiny", "m1.small", "g1.vgpu", "x1.huge"
USER_DATA = b"#cloud-config\nruncmd:\n  - echo daaas-test\n"


def cloud_name() -> str:
    """Return the test cloud's name; skips (locally) or fails (CI) when it is not set."""
    name = os.environ.get("DAAAS_TEST_OPENSTACK_CLOUD")
    if name:
        return name
    if os.environ.get("CI"):
        pytest.fail("CI must test OpenStack: DAAAS_TEST_OPENSTACK_CLOUD is not set. Run "
                    "`.ci/openstack.sh` and export what it prints.")
    pytest.skip("DAAAS_TEST_OPENSTACK_CLOUD not set (run .ci/openstack.sh and export its output)")
    return ""


def admin_connection() -> Any:
    """Return an openstacksdk connection as the test cloud's admin (set-up and checks only)."""
    return openstack.connect(cloud=f"{cloud_name()}-admin")


def environment(flavor: str = CPU_FLAVOR, image: dict[str, str] | None = None) -> Environment:
    """Return a resolved catalogue entry booting ``flavor`` (GPU flavors listed as such)."""
    return make_environment(
        name="contract", title="Contract test desktop", applications=[], gpu="optional",
        protocols=["novnc"], image=image or {"name": IMAGE},
        flavors={"default": flavor, "allowed": [CPU_FLAVOR, GPU_FLAVOR, HUGE_FLAVOR],
                 "gpu": [GPU_FLAVOR]})


def new_provider(cloud: str | None = None, **options: Any) -> OpenStackProvider:
    """Return a provider on the test cloud with a tag of its own (network none: no Neutron)."""
    options.setdefault("server_tag", f"daaas-test-{uuid.uuid4().hex[:8]}")
    return OpenStackProvider(cloud or cloud_name(), network="none", **options)


def servers_tagged(tag: str) -> list[Any]:
    """Return the servers carrying ``tag``, as the admin sees them (independent of the provider)."""
    conn = admin_connection()
    return [s for s in conn.compute.servers(details=True, all_projects=True, tags=tag)
            if s.status != "DELETED"]


def remove_tagged(tag: str) -> None:
    """Delete every server carrying ``tag`` and wait until they are gone."""
    conn = admin_connection()
    servers = servers_tagged(tag)
    for server in servers:
        conn.compute.delete_server(server, ignore_missing=True)
    for server in servers:
        conn.compute.wait_for_delete(server, interval=1, wait=120)


def provider_fixture(**options: Any) -> Iterator[OpenStackProvider]:
    """Yield a provider with its own tag; every server it made is removed afterwards."""
    provider = new_provider(**options)
    try:
        yield provider
    finally:
        remove_tagged(provider.server_tag)


def wait_for(check: Callable[[], Any], timeout: float = 120, interval: float = 1) -> Any:
    """Return the first truthy result of ``check()``; fails the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s (last: {result!r})")
        time.sleep(interval)


def wait_state(provider: OpenStackProvider, machine_id: str, state: ProviderState,
               timeout: float = 300) -> Any:
    """Poll until the machine is in ``state``; returns its ProviderStatus."""
    def check() -> Any:
        status = provider.poll([machine_id])[machine_id]
        return status if status.state == state else None
    return wait_for(check, timeout)


class RequestCounter:
    """Counts real HTTP requests an openstacksdk connection sends, by service URL prefix."""

    def __init__(self, conn: Any) -> None:
        self.urls: list[str] = []
        conn.session.session.hooks.setdefault("response", []).append(self._record)

    def _record(self, response: Any, *args: Any, **kwargs: Any) -> None:
        self.urls.append(f"{response.request.method} {response.request.url}")

    def count(self, port: int) -> int:
        """Return how many requests went to 127.0.0.1:``port`` (8774 is Nova)."""
        return sum(f"127.0.0.1:{port}/" in url for url in self.urls)


def worker(app: Flask, provider: OpenStackProvider) -> Reconciler:
    settings = app.extensions["daaas"].settings
    return Reconciler(worker_session_factory(settings.effective_database_url), provider,
                      secret_key=resolve_secret_key(settings), ready_timeout_seconds=600,
                      settings=settings)


def run_until(app: Flask, reconciler: Reconciler, machine_id: str, state: str) -> None:
    def check() -> bool:
        reconciler.run_once()
        return machine_row(app, machine_id).state == state
    support.wait_for(check, timeout=120)
