"""Orphans at the provider are reported on the admin page (as the reconciler last found them)
and by `daaas orphans`, for the local provider and for the real OpenStack services alike."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from daaas.portal import create_app
from daaas.portal.cli import main
from daaas.portal.machines.reconciler import Reconciler
from daaas.portal.providers import PROVIDERS, LaunchSpec
from tests.support.environments import make_environment
from tests.support.web import sign_in


@pytest.fixture(params=["local", "openstack"])
def provider_settings(request: pytest.FixtureRequest, tmp_path: Path,
                      settings_override: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if request.param == "local":
        if shutil.which("Xvnc") is None and not os.environ.get("CI"):
            pytest.skip("Xvnc is not installed (apt-get install tigervnc-standalone-server)")
        yield settings_override
        return
    from tests.openstack import support

    tag = f"daaas-test-{uuid.uuid4().hex[:8]}"
    try:
        yield {**settings_override, "provider": "openstack",
               "openstack_cloud": support.cloud_name(), "openstack_network": "none",
               "openstack_server_tag": tag}
    finally:
        support.remove_tagged(tag)


def observe(app: Flask) -> None:
    """Run one reconciler cycle, which records the orphans for the admin page."""
    rt = app.extensions["daaas"]
    Reconciler(rt.session_factory, rt.provider, secret_key="k", ready_timeout_seconds=600,
               settings=rt.settings).run_once()


def test_orphan_is_reported_and_removed(provider_settings: dict[str, Any]) -> None:
    from daaas.portal.config import load_settings

    provider = PROVIDERS.build(load_settings(provider_settings, environ={}))
    orphan = uuid.uuid4().hex
    environment = make_environment(applications=[], protocols=["novnc"])
    provider.launch(LaunchSpec(orphan, "scientist", 20000, 20000, environment, "secret12",
                               "800x600", flavor="m1.large", user_data=b"#cloud-config\n"))
    try:
        app = create_app(provider_settings)
        observe(app)  # the page shows what the reconciler found, never asks the provider
        client = app.test_client()
        sign_in(client, "admin", "admin-demo-pass")
        page = client.get("/admin/machines").get_data(as_text=True)
        assert f"<code>{orphan}</code>" in page
        env = {f"DAAAS_{k.upper()}": str(v) for k, v in provider_settings.items()}
        listed = CliRunner().invoke(main, ["orphans"], env=env)
        assert listed.exit_code == 0, listed.output
        assert f"{orphan}\torphan" in listed.output
        removed = CliRunner().invoke(main, ["orphans", "--delete"], env=env)
        assert f"{orphan}\tremoved" in removed.output
        assert orphan not in provider.list_machine_ids()
        observe(app)
        again = client.get("/admin/machines").get_data(as_text=True)
        assert 'id="no-orphans"' in again
    finally:
        provider.delete(orphan)
