"""ONE real VM proves what the portal promises of a cloud machine (issue 18, point 5).

The portal (``daaas serve``, QEMU provider, restricted user-mode network) launches the tier's
light image for ``hpc-alice`` from a real browser, bound to an experiment. The tests of this
module then check that one VM, each from the outside, with real clients:

- cloud-init applies OUR user-data and the bootstrap agent reports ready by itself;
- the browser shows its desktop through the desktop proxy and noVNC;
- ``ssh`` with the key the user added on the SSH-keys page logs in as the user (another key
  does not);
- the experiment's data is mounted read-only from a real NFS server (NFS-Ganesha, started
  here) and a write to it fails;
- the user's storage (the ``local`` backend, exported by this host: ``daaas storage exports``)
  is mounted read-write, and a file written in the VM is in My Data;
- FreeRDP signs in to xrdp with the one-time secret the machine page shows, once: the same
  secret again, and a secret after its expiry, are refused (the VM's verifier writes each
  verdict to the console, which QEMU keeps on this host);
- ``daaas-submit`` in the VM runs a job on the test Slurm as the user, its output in storage;
- deleting the machine removes the VM and its files.

The VM reaches only what the checks need (``qemu_guest_forwards``: the portal, the NFS server,
slurmrestd) and this host reaches only its VNC, ssh and RDP ports, on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from daaas.portal.auth.service import create_user
from daaas.portal.config import load_settings
from daaas.portal.db import make_engine, make_session_factory, unit_of_work
from daaas.portal.experiments.importer import import_experiments, parse
from tests.support.browser import signed_in_page
from tests.support.hpc import slurm_cluster
from tests.support.nfs import Export, NfsServer
from tests.support.paths import OUTPUT, ROOT
from tests.vm import harness

pytestmark = pytest.mark.vm
SCREENSHOT = ROOT / "docs" / "screenshots" / "vm-desktop.png"
USER, PASSWORD = "hpc-alice", "vm-tier-password"
VISIT = "RB2699001-1"
GUEST_HOST = "10.0.2.100"  # the portal (80), the NFS server (2049) and slurmrestd (6820)
SLURM_GUEST_PORT = 6820
SIGN_IN_MINUTES = 1


@dataclass
class Tier:
    """The one VM and what the checks need to reach it."""

    url: str
    folder: Path
    var_dir: Path
    machine_id: str
    page: Any
    key: Path
    ssh_port: int
    rdp_port: int
    data_file: Path
    display: harness.XDisplay
    expiring_secret: str = ""  # asked for at the start, tried after it expired

    @property
    def console(self) -> Path:
        return self.var_dir / "qemu" / self.machine_id / "console.log"

    def ssh(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return harness.ssh(self.ssh_port, self.key, USER, command, timeout)


@pytest.fixture(scope="module")
def tier(vm_image: Path, browser: Any) -> Iterator[Tier]:
    cluster = slurm_cluster()
    if USER not in cluster.users:
        pytest.fail(f"the test cluster has no user {USER}")
    folder = Path(tempfile.mkdtemp(prefix="daaas-vm-tier-", dir="/tmp"))
    folder.chmod(0o755)  # the Slurm job (as hpc-alice) walks to the user's storage below
    data = folder / "data"
    data_file = _experiment_data(data)
    var = folder / "var"
    nfs = NfsServer([Export(data / "wish", "/data/wish")]).start()
    display = harness.XDisplay(folder)
    process = None
    try:
        settings = {
            "DAAAS_QEMU_GUEST_FORWARDS":
                f"{GUEST_HOST}:2049=127.0.0.1:{nfs.port},"
                f"{GUEST_HOST}:{SLURM_GUEST_PORT}={_host_port(cluster.url)}",
            "DAAAS_QEMU_HOST_FORWARDS": "ssh,rdp",
            "DAAAS_EXPERIMENT_EXPORT": "nfs",
            "DAAAS_EXPERIMENT_EXPORT_LOCATION": f"{data}/{{instrument}}",
            "DAAAS_EXPERIMENT_EXPORT_SOURCE": f"{GUEST_HOST}:/data/{{instrument}}",
            "DAAAS_EXPERIMENT_EXPORT_OPTIONS": "vers=4.1",
            "DAAAS_LOCAL_STORAGE_EXPORT": f"{GUEST_HOST}:/storage/{{username}}",
            "DAAAS_STORAGE_MOUNT_OPTIONS": "vers=4.1",
            "DAAAS_HPC_SLURMRESTD_URL": cluster.url,
            "DAAAS_HPC_MACHINE_SLURMRESTD_URL": f"http://{GUEST_HOST}:{SLURM_GUEST_PORT}",
            "DAAAS_HPC_JWT_KEY_FILE": cluster.key_file, "DAAAS_HPC_CLUSTER": cluster.name,
            "DAAAS_HPC_WORK_DIR": f"{var}/storage/{{username}}",
            "DAAAS_RDP_SIGN_IN_MINUTES": str(SIGN_IN_MINUTES),
        }
        process, url = harness.start_portal(folder, vm_image, settings)
        _portal_user_with_experiment(var, data_file.parent.parent)
        exports = harness.storage_exports(folder, settings, USER)
        nfs.reload(exports)
        page = signed_in_page(browser, url, USER, PASSWORD)
        key = harness.ssh_key(folder, "alice-key")
        harness.add_ssh_key(page, url, key)
        machine_id = _launch_with_experiment(page)
        machine = harness.wait_for_state(page, machine_id, timeout=1200)
        assert machine["state"] == "ready", machine
        ssh_port, rdp_port = _ports(page, url, machine_id)
        tier = Tier(url, folder, var, machine_id, page, key, ssh_port, rdp_port, data_file,
                    display)
        tier.expiring_secret = _rdp_secret(tier)  # expires while the other checks run
        yield tier
    finally:
        if process is not None:
            harness.stop_portal(process)
        harness.kill_leftover_vms(var)
        display.stop()
        nfs.stop()
        if (folder / "serve.log").exists():
            print((folder / "serve.log").read_text()[-3000:])
        shutil.rmtree(folder, ignore_errors=True)


def test_cloud_init_applies_our_user_data_and_the_agent_reports_ready(tier: Tier) -> None:
    machine = harness.api(tier.page, f"/api/v1/machines/{tier.machine_id}")
    messages = [event["message"] for event in machine["events"]]
    assert "the machine reported it is set up" in messages  # the VM's own report, not QEMU's
    console = _console(tier.console)
    assert harness.cloud_init_problems(console) == [], console[-4000:]
    assert "daaas-bootstrap: ready" in console
    assert "status: done" in console  # `cloud-init status --long` from daaas-boot-report
    state = json.loads((tier.console.parent / "state.json").read_text())
    print(f"VM tier: QEMU accelerator {state['accel']}")
    assert state["accel"] in ("kvm", "tcg")
    assert set(state["ports"]) == {"ssh", "rdp"}  # forwarded because the environment offers them


def test_the_browser_shows_the_vms_desktop(tier: Tier) -> None:
    page = tier.page
    page.goto(f"{tier.url}/machines/{tier.machine_id}/desktop")
    expect(page.locator("#status")).to_have_text("Connected.", timeout=60_000)
    shot = OUTPUT / "vm-desktop.png"
    harness.wait_for_desktop(page, shot)
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOT)
    page.goto(f"{tier.url}/machines/{tier.machine_id}")


def test_ssh_with_the_users_key_logs_in_as_the_user(tier: Tier) -> None:
    done = tier.ssh("id -un; id -u")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [USER, str(pwd.getpwnam(USER).pw_uid)]
    other = harness.ssh_key(tier.folder, "other-key")
    refused = harness.ssh(tier.ssh_port, other, USER, "id -un")
    assert refused.returncode == 255 and "Permission denied" in refused.stderr, refused


def test_the_experiments_data_is_mounted_read_only(tier: Tier) -> None:
    folder = f"~/experiment-{VISIT}"
    done = tier.ssh(f"cat {folder}/{tier.data_file.name}; "
                    f"findmnt -n -o SOURCE,FSTYPE,OPTIONS --target {folder}")
    assert done.returncode == 0, done.stderr
    *lines, mount = done.stdout.strip().splitlines()
    assert "\n".join(lines) + "\n" == tier.data_file.read_text(), done.stdout
    source, fstype, options = mount.split()
    # one dataset: its own folder of the export (several: their common folder)
    assert source == f"{GUEST_HOST}:/data/wish/2026/{VISIT}/run_1", mount
    assert fstype.startswith("nfs4"), mount
    assert options.split(",")[0] == "ro", mount
    write = tier.ssh(f"touch {folder}/written-by-vm")
    assert write.returncode != 0 and "Read-only file system" in write.stderr, write
    assert not (tier.data_file.parent / "written-by-vm").exists()
    link = tier.ssh(f"readlink ~/Desktop/'Experiment {VISIT}'")
    assert link.stdout.strip() == f"../experiment-{VISIT}"


def test_storage_is_read_write_and_a_file_written_in_the_vm_is_in_my_data(tier: Tier) -> None:
    mount = tier.ssh("findmnt -n -o SOURCE,OPTIONS --target ~/storage")
    assert mount.stdout.split()[0] == f"{GUEST_HOST}:/storage/{USER}", mount
    assert mount.stdout.split()[1].startswith("rw,"), mount
    written = tier.ssh("echo 'written in the VM' > ~/storage/from-the-vm.txt && sync")
    assert written.returncode == 0, written.stderr
    page = tier.page
    page.goto(f"{tier.url}/my-data/")
    expect(page.get_by_role("link", name="from-the-vm.txt")).to_be_visible()
    download = page.request.get(f"{tier.url}/my-data/storage/from-the-vm.txt")
    assert download.ok and download.text() == "written in the VM\n"
    on_host = tier.var_dir / "storage" / USER / "from-the-vm.txt"
    assert on_host.stat().st_uid == pwd.getpwnam(USER).pw_uid  # the user's file, not root's


def test_rdp_signs_in_once_with_the_one_time_secret(tier: Tier) -> None:
    secret = _rdp_secret(tier)
    accepted = rf"daaas-rdp-sign-in: accepted for {USER} "
    console = _rdp(tier, secret, accepted)
    count = len(re.findall(accepted, console))
    console = _rdp(tier, secret, rf"daaas-rdp-sign-in: refused for {USER}: token already used")
    assert len(re.findall(accepted, console)) == count  # not accepted a second time
    _rdp(tier, "a-guessed-password", rf"daaas-rdp-sign-in: refused for {USER}: not a sign-in")


def test_an_rdp_secret_is_refused_after_it_expires(tier: Tier) -> None:
    secret = tier.expiring_secret
    claims = json.loads(_b64(secret.split(".")[1]))
    assert claims["exp"] - time.time() <= SIGN_IN_MINUTES * 60
    time.sleep(max(0.0, claims["exp"] + 31 - time.time()))  # the verifier allows 30 s of skew
    _rdp(tier, secret, rf"daaas-rdp-sign-in: refused for {USER}: token expired")


def test_daaas_submit_in_the_vm_runs_a_job_whose_output_lands_in_storage(tier: Tier) -> None:
    script = "#!/bin/sh\\necho \"job of $(id -un) on $(hostname)\"\\n"
    done = tier.ssh(f"printf '{script}' > ~/job.sh && "
                    "daaas-submit --name vm-tier --wait --timeout 300 ~/job.sh", timeout=400)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "COMPLETED" in done.stdout, done.stdout
    output = Path(done.stdout.strip().splitlines()[-1].rsplit("output: ", 1)[1])
    assert output.parent == tier.var_dir / "storage" / USER, output  # the user's storage
    assert output.read_text() == f"job of {USER} on {os.uname().nodename}\n"  # ran on the cluster
    seen = tier.ssh(f"cat ~/storage/{output.name}")  # and the VM sees it there
    assert seen.stdout == output.read_text(), seen


def test_deleting_the_machine_removes_the_vm(tier: Tier) -> None:
    page = tier.page
    page.goto(f"{tier.url}/machines/{tier.machine_id}")
    page.on("dialog", lambda dialog: dialog.accept())
    page.click("form[data-confirm] button")
    page.wait_for_url("**/analysis")
    _wait(lambda: harness.api(page, f"/api/v1/machines/{tier.machine_id}")["state"] ==
          "deleted", 120, "the machine to be deleted")
    assert not tier.console.parent.exists()  # overlay, seed and logs removed


# -- set-up -----------------------------------------------------------------------------------

def _experiment_data(data: Path) -> Path:
    """Write the experiment's one data file (as the facility's data store holds it)."""
    folder = data / "wish" / "2026" / VISIT / "run_1"
    folder.mkdir(parents=True)
    for part in [folder, *folder.parents][:5]:
        part.chmod(0o755)
    path = folder / "WISH00051234.nxs"
    path.write_text("# WISH run 51234, for the VM tier\n" * 8)
    path.chmod(0o644)
    return path


def _portal_user_with_experiment(var: Path, visit_folder: Path) -> None:
    """Create ``hpc-alice`` with the cluster account's uid/gid and an experiment of theirs
    whose dataset lies in the exported data (the embedded experiments catalogue)."""
    settings = load_settings({"var_dir": str(var)}, environ={})
    engine = make_engine(settings.effective_database_url)
    try:
        with unit_of_work(make_session_factory(engine)) as db:
            user = create_user(db, settings, USER, PASSWORD, instruments=["WISH"])
            account = pwd.getpwnam(USER)
            user.uid, user.gid = account.pw_uid, account.pw_gid
            now = datetime.now(UTC)
            import_experiments(db, parse({
                "facilities": [{"name": "ISIS", "instruments": [{"name": "WISH"}]}],
                "users": [{"name": USER}],
                "investigations": [{
                    "facility": "ISIS", "name": "RB2699001", "visit_id": VISIT,
                    "title": "VM tier: data mounted from the facility's export",
                    "instruments": ["WISH"], "start_date": now - timedelta(days=1),
                    "end_date": now + timedelta(days=2),
                    "users": [{"name": USER, "role": "principal_experimenter"}],
                    "datasets": [{"name": "run_1", "location": str(visit_folder / "run_1"),
                                  "files": [{"name": "WISH00051234.nxs"}]}]}]}, "vm tier"))
    finally:
        engine.dispose()




def _launch_with_experiment(page: Any) -> str:
    page.goto(page.url.split("/account")[0] + "/analysis")
    card = page.locator('li.card[data-environment="vm-desktop"]')
    choice = card.locator("select[name=experiment] option", has_text=VISIT)
    card.locator("select[name=experiment]").select_option(choice.get_attribute("value"))
    card.locator("button.launch-button").click()
    page.wait_for_url("**/machines/*")
    return str(page.url.rstrip("/").rsplit("/", 1)[1])


def _ports(page: Any, url: str, machine_id: str) -> tuple[int, int]:
    """Return the ssh and RDP ports as the machine page offers them (its ssh command and the
    .rdp download), waiting for the worker to record them."""
    deadline = time.monotonic() + 60
    while True:
        page.goto(f"{url}/machines/{machine_id}")
        if page.locator("#ssh-command-text").count():
            break
        assert time.monotonic() < deadline, page.locator("#machine-access").inner_text()
        time.sleep(2)
    command = page.locator("#ssh-command-text").inner_text()
    found = re.fullmatch(rf"ssh -p (\d+) {USER}@127\.0\.0\.1", command)
    assert found, command
    rdp = page.request.get(f"{url}/machines/{machine_id}/rdp").text()
    address = re.search(r"full address:s:127\.0\.0\.1:(\d+)", rdp)
    assert address, rdp
    return int(found[1]), int(address[1])


def _rdp_secret(tier: Tier) -> str:
    """Press "Sign in with RDP" on the machine page; return the one-time secret shown."""
    page = tier.page
    page.goto(f"{tier.url}/machines/{tier.machine_id}")
    page.click("#rdp-sign-in-button")
    secret: str = page.locator("#rdp-secret").inner_text().strip()
    assert page.locator("#rdp-user").inner_text() == USER
    return secret


def _b64(part: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _host_port(url: str) -> str:
    found = re.fullmatch(r"https?://([^/:]+):(\d+)/?", url)
    assert found, url
    return f"{found[1]}:{found[2]}"


def _rdp(tier: Tier, password: str, verdict: str) -> str:
    return harness.rdp_sign_in(tier.display.display, tier.rdp_port, USER, password,
                               tier.console, verdict)


def _console(path: Path, timeout: float = 180) -> str:
    """Return the VM's console once daaas-boot-report has shown cloud-init's status.

    A copy goes to the test output for CI.
    """
    deadline = time.monotonic() + timeout
    text = ""
    while time.monotonic() < deadline:
        text = harness.clean(path.read_text(errors="replace"))
        if "daaas-boot-report: end" in text:
            break
        time.sleep(2)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    (OUTPUT / "vm-console.log").write_text(text)
    return text


def _wait(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")
