"""What the reconciler hands a cloud-init provider, and `daaas context render` showing the same."""

from __future__ import annotations

import gzip
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask

from daaas.portal import create_app
from daaas.portal.bootstrap.userdata import (
    PLACEHOLDER_MACHINE_ID,
    PLACEHOLDER_TOKEN,
    launch_user_data,
)
from daaas.portal.cli import main
from daaas.portal.db import utcnow
from daaas.portal.machines.secrets import bootstrap_token, rdp_password, vnc_password
from daaas.portal.machines.spec import launch_spec
from tests.integration.context_support import (
    Cloud,
    FlakyCloud,
    RecordingProvider,
    cloud_config,
    cloudinit_python,
    context_row,
    machine_row,
    reconciler,
    secret_key,
)
from tests.support.cloudinit import validate_with_cloudinit
from tests.support.machines import launch


def plain(user_data: bytes) -> bytes:
    return gzip.decompress(user_data) if user_data[:2] == b"\x1f\x8b" else user_data


def test_user_data_carries_the_token_and_no_password_and_passes_cloudinit(app: Flask) -> None:
    python = cloudinit_python()
    cloud = Cloud(app)
    ids = [cloud.launch(environment)[0] for environment in ("ccp4", "tomography-gpu")]
    key = secret_key(app)
    for machine_id in ids:
        spec = cloud.provider.specs[machine_id]
        assert spec.user_data is not None
        assert "user_data=" not in repr(spec) and spec.vnc_password not in repr(spec)
        text = plain(spec.user_data)
        assert bootstrap_token(key, machine_id).encode() in text
        for secret in (vnc_password(key, machine_id), rdp_password(key, machine_id), key):
            assert secret.encode() not in text and secret.encode() not in spec.user_data
        document = cloud.document(machine_id)
        assert document["machine_id"] == machine_id
        assert document["callback_url"] == "http://127.0.0.1:8080"
        assert document["user"]["name"] == "scientist"
        assert context_row(app, machine_id)["token_hash"] != document["token"]
    validate_with_cloudinit(python, *(cloud.provider.specs[i].user_data or b"" for i in ids))


def test_public_url_is_where_the_vm_calls_back(settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override, "public_url": "https://daaas.example.org/portal/"})
    try:
        cloud = Cloud(app)
        machine_id, _ = cloud.launch()
        assert cloud.document(machine_id)["callback_url"] == "https://daaas.example.org/portal"
    finally:
        app.extensions["daaas"].engine.dispose()


def test_a_provider_without_cloud_init_gets_no_user_data(app: Flask) -> None:
    provider = RecordingProvider()
    machine_id = launch(app)
    reconciler(app, provider).run_once()
    assert provider.specs[machine_id].user_data is None
    with app.extensions["daaas"].session_factory() as db:
        from daaas.portal.bootstrap.models import MachineContext

        assert db.get(MachineContext, machine_id) is None


def test_a_retried_launch_sends_the_same_user_data_and_its_token_works(app: Flask) -> None:
    cloud = Cloud(app, FlakyCloud())  # the cloud kept the first launch but timed out
    machine_id = launch(app)
    cloud.cycle()
    assert machine_row(app, machine_id).state == "requested"
    cloud.cycle()
    assert machine_row(app, machine_id).state == "provisioning"
    first, second = cloud.provider.launches
    assert first.user_data == second.user_data
    token = cloud.document(machine_id)["token"]
    answer = app.test_client().post(f"/api/v1/context/{machine_id}/bootstrap",
                                    json={"token": token})
    assert answer.status_code == 200


def test_a_relaunch_after_a_crash_sends_the_same_user_data(app: Flask) -> None:
    """A worker that launched but died before committing: the next one renders the same."""
    from daaas.portal.machines.models import Machine

    cloud = Cloud(app)
    machine_id = launch(app)
    with app.extensions["daaas"].session_factory() as db:  # the dead worker's transaction
        row = db.get(Machine, machine_id)
        assert row is not None
        settings, key = app.extensions["daaas"].settings, secret_key(app)
        user_data = launch_user_data(db, settings, key, row, utcnow())
        cloud.provider.launch(launch_spec(settings, key, row, user_data))
        db.rollback()
    cloud.cycle()
    first, second = cloud.provider.launches
    assert first.user_data is not None and first.user_data == second.user_data
    token = cloud.document(machine_id)["token"]
    assert app.test_client().post(f"/api/v1/context/{machine_id}/bootstrap",
                                  json={"token": token}).status_code == 200


def test_a_session_that_cannot_be_described_fails_with_a_message(
        settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override, "public_url": "ftp://portal.example.org"})
    try:
        cloud = Cloud(app)
        machine_id = launch(app)
        cloud.cycle()
        row = machine_row(app, machine_id)
        assert row.state == "error"
        assert "The environment 'ccp4' cannot be started" in row.error_reason
        assert "callback" in row.error_reason
        assert machine_id not in cloud.provider.list_machine_ids()
    finally:
        app.extensions["daaas"].engine.dispose()


def test_a_cloud_init_provider_needs_the_settings(app: Flask) -> None:
    from daaas.portal.machines.reconciler import Reconciler
    from tests.integration.context_support import CloudInitProvider

    with pytest.raises(ValueError, match="pass the settings"):
        Reconciler(app.extensions["daaas"].session_factory, CloudInitProvider(),
                   secret_key="k", ready_timeout_seconds=60)


# --- daaas context render -----------------------------------------------------------------------

def run_cli(settings_override: dict[str, Any], *args: str) -> Any:
    env = {f"DAAAS_{key.upper()}": value for key, value in settings_override.items()}
    return CliRunner().invoke(main, ["context", "render", *args], env=env)


def test_render_prints_what_the_portal_sends_with_placeholders(
        app: Flask, settings_override: dict[str, Any]) -> None:
    python = cloudinit_python()
    result = run_cli(settings_override, "ccp4")
    assert result.exit_code == 0, result.output
    rendered = result.stdout.encode()
    validate_with_cloudinit(python, rendered)
    document = cloud_config(rendered)
    assert document["users"][0]["name"] == "scientist"

    cloud = Cloud(app)
    machine_id, token = cloud.launch("ccp4")
    sent = plain(cloud.provider.specs[machine_id].user_data or b"").decode()
    expected = sent.replace(machine_id, PLACEHOLDER_MACHINE_ID).replace(token, PLACEHOLDER_TOKEN)
    assert result.stdout == expected


def test_render_for_another_user(settings_override: dict[str, Any]) -> None:
    result = run_cli(settings_override, "mantid", "--user", "neutron")
    assert result.exit_code == 0, result.output
    assert cloud_config(result.stdout.encode())["users"][0]["name"] == "neutron"


@pytest.mark.parametrize(("args", "message"), [
    (("no-such-env",), "There is no environment called 'no-such-env'"),
    (("ccp4", "--user", "ghost"), "There is no user called 'ghost'"),
])
def test_render_refuses_unknown_names(settings_override: dict[str, Any], args: tuple[str, ...],
                                      message: str) -> None:
    result = run_cli(settings_override, *args)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output
