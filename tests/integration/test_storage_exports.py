"""The ``local`` backend's storage on cloud VMs, end to end on this host without a VM: the real
``daaas storage exports`` writes per-user Ganesha exports, a real NFS-Ganesha serves exactly
those blocks (tests/support/nfs.py) and libnfs' user-space client plays the VM, mounting what
the portal tells the machine (``LocalStorage.machine_mount``): the user writes into their own
folder as themselves, reaches no other user's folder, and a client outside ``--clients`` is
refused."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from daaas.portal.auth.models import User
from daaas.portal.cli import main
from daaas.portal.config import load_settings
from daaas.portal.db import make_engine, make_session_factory
from daaas.portal.storage.service import backend, storage_area
from tests.support.nfs import NfsServer

TEMPLATE = "127.0.0.1:/storage/{username}"


def _require() -> None:
    reason = NfsServer.unavailable() or (
        None if shutil.which("nfs-cp") else "libnfs-utils (nfs-cp) is not installed")
    if reason:
        if os.environ.get("CI") and os.geteuid() == 0:  # as the other root-only tests: skip
            pytest.fail(f"CI must run the NFS tests: {reason}")
        pytest.skip(reason)


def daaas(folder: Path, *args: str, stdin: str = "", export: str = TEMPLATE) -> Any:
    """Run the ``daaas`` command (in this process) with only this portal's settings."""
    env: dict[str, str | None] = {key: None for key in os.environ if key.startswith("DAAAS_")}
    env.update(DAAAS_VAR_DIR=str(folder / "var"), DAAAS_LOCAL_STORAGE_EXPORT=export)
    return CliRunner().invoke(main, list(args), env=env, input=stdin)


def nfs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A portal folder with a migrated database and the accounts alice and bob."""
    _require()
    tmp_path = tmp_path_factory.mktemp("portal")
    tmp_path.chmod(0o755)
    assert daaas(tmp_path, "db", "upgrade").exit_code == 0
    for name in ("alice", "bob"):
        added = daaas(tmp_path, "users", "add", name, "--password", "-", stdin="pw-123456789\n")
        assert added.exit_code == 0, added.output
    return tmp_path


def account(portal: Path, name: str) -> User:
    """The account as the portal has it (its uid/gid)."""
    settings = load_settings({"var_dir": str(portal / "var")}, environ={})
    engine = make_engine(settings.effective_database_url)
    try:
        with make_session_factory(engine)() as db:
            user = db.query(User).filter_by(username=name).one()
            db.expunge(user)
            return user
    finally:
        engine.dispose()


@pytest.fixture()
def served(portal: Path) -> Iterator[tuple[NfsServer, Path]]:
    written = daaas(portal, "storage", "exports", "--clients", "127.0.0.1", "--create-folders",
                    "--output", str(portal / "daaas-storage.conf"))
    assert written.exit_code == 0 and written.stdout in ("changed\n", "unchanged\n"), \
        written.output
    blocks = (portal / "daaas-storage.conf").read_text()
    with NfsServer([], extra_config=blocks) as server:
        yield server, portal


def test_the_machine_mount_reaches_the_users_folder_and_writes_as_the_user(
        served: tuple[NfsServer, Path], tmp_path_factory: pytest.TempPathFactory) -> None:
    server, portal = served
    alice = account(portal, "alice")
    settings = load_settings({"var_dir": str(portal / "var"),
                              "local_storage_export": TEMPLATE}, environ={})
    mount = backend(settings).machine_mount(alice, "m-1")
    assert mount is not None and mount.source == "127.0.0.1:/storage/alice"
    upload = tmp_path_factory.mktemp("vm") / "result.txt"
    upload.write_text("computed in the VM\n")
    exported = mount.source.split(":", 1)[1]
    # As the VM's account (the portal's uid), and as a root process of the VM: both land as
    # the user, in the user's folder, where My Data reads it.
    for name, uid in (("result.txt", alice.uid), ("by-root.txt", 0)):
        written = nfs("nfs-cp", str(upload), server.url(f"{exported}/{name}", uid=uid, gid=uid))
        assert written.returncode == 0, written.stderr + server.log_text(tail=20)
        landed = storage_area(settings, alice).path / name
        assert landed.read_text() == "computed in the VM\n"
        assert (landed.stat().st_uid, landed.stat().st_gid) == (alice.uid, alice.gid)


def test_no_way_from_one_users_export_into_anothers_folder(
        served: tuple[NfsServer, Path]) -> None:
    server, portal = served
    alice, bob = account(portal, "alice"), account(portal, "bob")
    secret = portal / "var" / "storage" / "bob" / "secret.txt"
    secret.write_text("bob's\n")
    os.chown(secret, bob.uid, bob.gid)
    secret.chmod(0o600)
    # Above the exports are only Ganesha's pseudo folders, never var_dir/storage itself.
    (portal / "var" / "storage" / "carol").mkdir()  # a folder nobody exported
    listing = nfs("nfs-ls", server.url("/storage", uid=alice.uid, gid=alice.gid))
    assert {line.split()[-1] for line in listing.stdout.splitlines()} == {"alice", "bob"}
    listing_alice = nfs("nfs-ls", server.url("/storage/alice", uid=alice.uid, gid=alice.gid))
    assert "secret.txt" not in listing_alice.stdout
    # What sec=sys cannot stop, and docs/admin.md ("Isolation") says: a client in --clients
    # that asks for bob's export by name (root in a VM could mount it) is served as bob. The
    # portal tells alice's machine only her own export, and her VM gives her no root.
    climbed = nfs("nfs-cat", server.url("/storage/alice/../bob/secret.txt", uid=alice.uid,
                                        gid=alice.gid))
    assert (climbed.returncode, climbed.stdout) == (0, "bob's\n"), climbed.stderr


def test_a_client_outside_the_vms_networks_is_refused(served: tuple[NfsServer, Path],
                                                      tmp_path_factory: pytest.TempPathFactory
                                                      ) -> None:
    server, portal = served
    alice = account(portal, "alice")
    rewritten = daaas(portal, "storage", "exports", "--clients", "10.9.9.0/24",
                      "--output", str(portal / "daaas-storage.conf"))
    assert rewritten.stdout == "changed\n", rewritten.output
    server.reload((portal / "daaas-storage.conf").read_text())
    upload = tmp_path_factory.mktemp("outside") / "x.txt"
    upload.write_text("from elsewhere\n")
    refused = nfs("nfs-cp", str(upload), server.url("/storage/alice/x.txt", uid=alice.uid,
                                                    gid=alice.gid))
    assert refused.returncode != 0
    assert not (portal / "var" / "storage" / "alice" / "x.txt").exists()
    again = daaas(portal, "storage", "exports", "--clients", "10.9.9.0/24",
                  "--output", str(portal / "daaas-storage.conf"))
    assert again.stdout == "unchanged\n"


def test_exports_need_the_setting_and_the_vms_networks(portal: Path) -> None:
    unset = daaas(portal, "storage", "exports", "--clients", "10.0.0.0/16", export="")
    assert (unset.exit_code, unset.stdout) == (1, "")
    assert unset.stderr == ("Error: local_storage_export is empty: cloud VMs are not told of "
                            "any export, so there is nothing to export\n")
    open_to_all = daaas(portal, "storage", "exports", "--clients", "*")
    assert (open_to_all.exit_code, open_to_all.stdout) == (1, "")
    assert open_to_all.stderr == "Error: '*' is not an address or network\n"


def test_a_vm_users_own_nfs_client_is_refused(served: tuple[NfsServer, Path]) -> None:
    """Only root on a client can open a port below 1024, which the exports require: a VM's
    user (never root there) running a user-space NFS client of their own gets nothing, not
    even their own folder, let alone another user's. --insecure-ports (QEMU's user network)
    drops that check."""
    server, portal = served
    alice = account(portal, "alice")
    as_alice = ["setpriv", f"--reuid={alice.uid}", f"--regid={alice.gid}", "--clear-groups"]
    for path in ("/storage/bob", "/storage/alice"):
        refused = nfs(*as_alice, "nfs-ls", server.url(path, uid=alice.uid, gid=alice.gid))
        assert refused.returncode != 0, refused.stdout
    pseudo = nfs(*as_alice, "nfs-ls", server.url("/storage", uid=alice.uid, gid=alice.gid))
    assert pseudo.stdout.strip() == ""  # Ganesha hides exports the client may not use
    rewritten = daaas(portal, "storage", "exports", "--clients", "127.0.0.1", "--insecure-ports",
                      "--output", str(portal / "daaas-storage.conf"))
    assert rewritten.stdout == "changed\n", rewritten.output
    server.reload((portal / "daaas-storage.conf").read_text())
    allowed = nfs(*as_alice, "nfs-ls", server.url("/storage/alice", uid=alice.uid,
                                                  gid=alice.gid))
    assert allowed.returncode == 0, allowed.stderr
