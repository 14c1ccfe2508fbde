"""A machine of a site with an HPC cluster: the Slurm client settings in its user-data, no
credential there, and the user's Slurm JWT handed over once by the bootstrap exchange."""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from daaas.portal import create_app
from daaas.portal.hpc.machine import JWT_PATH
from tests.integration.context_support import Cloud


@pytest.fixture
def app(settings_override: dict[str, Any], tmp_path: Path) -> Any:
    key = tmp_path / "jwt.key"
    key.write_bytes(secrets.token_bytes(32))
    application = create_app({**settings_override, "hpc_slurmrestd_url": "http://127.0.0.1:9",
                              "hpc_jwt_key_file": str(key), "hpc_cluster": "scarf",
                              "hpc_slurmctld_host": "slurmctld.example.org"})
    yield application
    application.extensions["daaas"].engine.dispose()


def test_the_exchange_delivers_the_users_slurm_token_once(app: Flask) -> None:
    cloud = Cloud(app)
    machine_id, token = cloud.launch()
    user_data = cloud.provider.specs[machine_id].user_data
    assert user_data is not None
    text = user_data.decode()
    assert "export SLURM_CONF_SERVER=slurmctld.example.org" in text
    assert "export DAAAS_HPC_CLUSTER=scarf" in text
    client = app.test_client()
    first = client.post(f"/api/v1/context/{machine_id}/bootstrap", json={"token": token})
    assert first.status_code == 200, first.get_json()
    files = {f["path"]: f for f in first.get_json()["files"]}
    jwt = files[JWT_PATH]
    assert (jwt["mode"], jwt["owner"]) == ("0400", "scientist")
    claims = json.loads(base64.urlsafe_b64decode(jwt["content"].split(".")[1] + "=="))
    assert claims["sun"] == "scientist" and claims["exp"] > claims["iat"]
    assert jwt["content"].strip() not in text and jwt["content"].split(".")[2] not in text
    again = client.post(f"/api/v1/context/{machine_id}/bootstrap", json={"token": token})
    assert again.status_code == 403
