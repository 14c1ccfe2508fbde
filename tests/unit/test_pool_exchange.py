"""The bootstrap exchange of a warm pool's cloud machine (issue 20): its phases, what a claim
request gets, which reports may be recorded, what the poll makes of them, and what a pooled
machine's user-data and a claim's session hold. Pure functions, no database."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from daaas.contextualisation import Context, context_from_parts
from daaas.contextualisation.pool import (
    build_pool_cloud_config,
    claimed_session,
    pool_document,
    render_pool_user_data,
)
from daaas.portal.bootstrap.pooling import (
    POOLED_READY,
    ClaimStep,
    Phase,
    claim_step,
    may_record,
    phase,
)
from daaas.portal.machines.reconciler import seen_report
from tests.support.environments import make_environment

T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
LATER = T0 + timedelta(seconds=5)
SITE = {"callback_url": "https://portal.example.org"}
TOKEN = "pool-token-" + "x" * 20


def test_the_phases_follow_the_exchange_row() -> None:
    assert phase(None, None, None) is Phase.BOOTING
    assert phase(T0, None, None) is Phase.SETTING_UP
    assert phase(T0, POOLED_READY, LATER) is Phase.WAITING
    # the claim's answer sets used_at again, after the pooled-ready report
    assert phase(LATER + timedelta(seconds=1), POOLED_READY, LATER) is Phase.TAKEN
    assert phase(LATER, "ready", LATER) is Phase.REPORTED
    assert phase(None, "failed", T0) is Phase.REPORTED


def test_a_claim_request_waits_in_the_pool_is_held_once_claimed_and_takes_after_hand_over(
        ) -> None:
    assert claim_step(True, None, None) is ClaimStep.WAIT
    assert claim_step(False, None, None) is ClaimStep.WAIT  # never claimed: nothing to give
    assert claim_step(False, T0, None) is ClaimStep.SOON
    assert claim_step(False, T0, LATER) is ClaimStep.TAKE
    assert claim_step(True, T0, LATER) is ClaimStep.WAIT  # pool set wins: never someone's


@pytest.mark.parametrize(("pooled", "current", "status", "allowed"), [
    (True, Phase.SETTING_UP, POOLED_READY, True),
    (True, Phase.BOOTING, POOLED_READY, False),  # before its exchange
    (False, Phase.SETTING_UP, POOLED_READY, False),  # a claimed machine is back to no pool
    (True, Phase.WAITING, "ready", False),  # ready in the pool would be nobody's desktop
    (False, Phase.WAITING, "ready", False),  # claimed but the user's set-up not taken
    (False, Phase.TAKEN, "ready", True),
    (True, Phase.WAITING, "failed", True),
    (False, Phase.TAKEN, "failed", True),
    (False, Phase.REPORTED, "failed", False),
])
def test_which_reports_are_recorded(pooled: bool, current: Phase, status: str,
                                    allowed: bool) -> None:
    assert may_record(pooled, current, status) is allowed


def test_the_poll_sees_pooled_ready_as_ready_only_in_the_pool() -> None:
    assert seen_report(POOLED_READY, True) == "ready"
    assert seen_report(POOLED_READY, False) is None  # claimed: waits for its user's ready
    assert seen_report("ready", False) == "ready"
    assert seen_report("failed", True) == "failed"
    assert seen_report(None, True) is None


def contexts(protocols: tuple[str, ...] = ("novnc", "rdp", "ssh")) -> tuple[Context, Context]:
    env = make_environment(protocols=list(protocols))
    pool = context_from_parts({"username": "daaas-pool", "uid": 5000, "gid": 5000}, "m-1", env,
                              SITE, bootstrap_token=TOKEN)
    alice = context_from_parts(
        {"username": "alice", "uid": 20001, "gid": 20001, "full_name": "Alice A"}, "m-1", env,
        SITE, bootstrap_token=TOKEN,
        mounts=[{"kind": "nfs", "source": "nfs.example.org:/export/alice",
                 "target": "/home/alice/storage", "purpose": "storage"}])
    return pool, alice


def test_a_pooled_machines_user_data_names_no_one() -> None:
    pool, _ = contexts()
    config = build_pool_cloud_config(pool)
    text = json.dumps(config)
    assert config["users"] == [] and "daaas-pool" not in text and "/home/" not in text
    assert "bootcmd" not in config and "mounts" not in config
    paths = [entry["path"] for entry in config["write_files"]]
    assert "/etc/tigervnc/vncserver.users" not in paths
    document = pool_document(pool)
    assert document["mode"] == "pool" and "user" not in document and document["token"] == TOKEN
    # the VNC server starts after the claim, as the user; xrdp and sshd (root daemons that
    # accept no one before the claim) start while the machine waits in its pool
    enable = document["services"]["enable"]
    assert not any("tigervnc" in unit for unit in enable), enable
    assert {"xrdp.service", "ssh.service"} <= set(enable), enable
    assert all(path.startswith("/usr/share/applications/") for path in
               document["desktop_files"]) and document["desktop_files"]
    assert render_pool_user_data(pool).startswith(b"#cloud-config\n")


def test_the_claims_session_is_the_claimers() -> None:
    _, alice = contexts()
    session = claimed_session(alice)
    assert session["user"] == {"name": "alice", "uid": 20001, "gid": 20001,
                               "home": "/home/alice", "full_name": "Alice A"}
    assert session["vnc_password_file"] == "/home/alice/.vnc/passwd"
    assert session["authorized_keys_file"] == "/home/alice/.ssh/authorized_keys"
    assert session["vnc_users"] == ":1=alice\n"
    assert session["storage_mounts"] == [{"fstype": "nfs",
                                          "source": "nfs.example.org:/export/alice",
                                          "target": "/home/alice/storage",
                                          "options": "rw,_netdev,nofail"}]
    assert session["services"]["enable"] == ["tigervncserver@:1.service"]


def test_without_vnc_the_session_has_no_vnc_user_map() -> None:
    _, alice = contexts(("ssh",))
    session = claimed_session(alice)
    assert session["vnc_users"] is None and session["vnc_password_file"] is None
    assert session["services"]["enable"] == []  # sshd runs already, from the pool
