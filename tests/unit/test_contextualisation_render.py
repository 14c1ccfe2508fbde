"""Rendered user-data: valid for the real cloud-init, secret-free, safely quoted, small enough."""

from __future__ import annotations

import base64
import configparser
import json
import secrets
import shlex
import shutil
import subprocess
from typing import Any

import pytest

from daaas.contextualisation import (
    NOVA_USER_DATA_LIMIT,
    Context,
    UserDataTooLarge,
    build_cloud_config,
    context_from_parts,
    render_user_data,
)
from tests.support.cloudinit import (
    PEM,
    SITE,
    TOKEN,
    decoded,
    loaded,
    parse,
    validate_with_cloudinit,
)
from tests.support.environments import make_environment

VNC_PASSWORD = "vnc-Secret-8c1f"  # what the bootstrap exchange would deliver later
RDP_PASSWORD = "rdp-Secret-93ab"
HOSTILE = 'Evil: "quoted" \'single\' #comment\n- path: /etc/shadow\n---\n{{ jinja }} %(x)s \\ \t'
MOUNTS: list[dict[str, Any]] = [
    {"kind": "nfs", "source": "fs1.example.org:/export/users/alice", "target": "/storage/alice",
     "purpose": "storage", "options": ["vers=4.2"]},
    {"kind": "cephfs", "source": "mon1,mon2:/experiments/RB1234", "target": "/data/RB1234",
     "read_only": True, "purpose": "experiment", "label": "Experiment RB1234 (beamtime)",
     "options": ["name=alice", "secretfile=/etc/ceph/alice.secret"]},
]


def application(name: str, command: str = "/cvmfs/ccp4.example.org/bin/coot",
                **extra: Any) -> dict[str, Any]:
    """A catalogue application; ``command`` is a command line (program and arguments)."""
    program, *arguments = shlex.split(command)
    return {"name": name, "command": program, "arguments": arguments, "icon": "coot.svg",
            "category": "Science", "terminal": False,
            "description": f"{name} for crystallography", **extra}


def make_context(title: str = "CCP4 crystallography desktop",
                 apps: list[dict[str, Any]] | None = None, site: dict[str, Any] = SITE,
                 **user: Any) -> Context:
    environment = make_environment(
        name="ccp4", title=title, gpu="none", access={},
        applications=[application("Coot")] if apps is None else apps,
        cvmfs_repositories=["ccp4.example.org"], protocols=["novnc", "rdp", "ssh"])
    account = {"username": "alice", "uid": 20001, "gid": 20001, "full_name": "Alice Example",
               "ssh_public_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample alice@lab"],
               **user}
    return context_from_parts(account, "m-0001", environment, site, bootstrap_token=TOKEN,
                              mounts=MOUNTS)


def files_of(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {entry["path"]: entry for entry in config["write_files"]}


# --- the real cloud-init schema -------------------------------------------------------------

@pytest.mark.parametrize("ctx", [
    make_context(),
    make_context(title=HOSTILE, apps=[application(HOSTILE, f"/cvmfs/ccp4.example.org/{HOSTILE[:4]}"
                                                  " --title 'a \"b\" $HOME %f'")],
                 full_name=HOSTILE),
    make_context(apps=[], site={"callback_url": "http://10.0.0.1:8080"}),
], ids=["full", "hostile", "minimal"])
def test_user_data_passes_the_real_cloudinit_schema(cloudinit_python: str, ctx: Context) -> None:
    validate_with_cloudinit(cloudinit_python, render_user_data(ctx))


def test_every_catalogue_environment_renders_valid_user_data(cloudinit_python: str) -> None:
    from daaas.catalogue.loader import DEFAULT_DIRECTORY, load_catalogue

    environments = load_catalogue(DEFAULT_DIRECTORY).environments.values()
    user_data = [render_user_data(context_from_parts(
        {"username": "alice", "uid": 20001, "gid": 20001}, "m-1", environment, SITE,
        bootstrap_token=TOKEN, mounts=MOUNTS)) for environment in environments]
    assert user_data
    validate_with_cloudinit(cloudinit_python, *user_data)


def test_the_schema_check_catches_what_cloudinit_22_4_lets_pass(cloudinit_python: str) -> None:
    for bad in (b"#cloud-config\nnot_a_module: 1\n",
                b"#cloud-config\nwrite_files:\n- path: /x\n  mode: '0600'\n"):
        with pytest.raises(AssertionError):
            validate_with_cloudinit(cloudinit_python, bad)


# --- what must never be in user-data ----------------------------------------------------------

def all_keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | set().union(*(all_keys(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(all_keys(item) for item in value))
    return set()


def test_no_secret_and_no_password_field_in_user_data() -> None:
    raw = render_user_data(make_context())
    text = decoded(raw)
    for secret in (VNC_PASSWORD, RDP_PASSWORD):
        assert secret not in text
    keys = all_keys(parse(text))
    assert not keys & {"passwd", "hashed_passwd", "plain_text_passwd", "password", "chpasswd"}
    assert not keys & {"packages", "package_update", "package_upgrade", "apt"}
    assert len(base64.b64encode(raw)) <= NOVA_USER_DATA_LIMIT


def test_bootstrap_document_is_root_only_and_carries_the_token() -> None:
    entry = files_of(loaded(make_context()))["/etc/daaas/bootstrap.json"]
    assert (entry["permissions"], entry["owner"]) == ("0600", "root:root")
    document = json.loads(entry["content"])
    assert document["machine_id"] == "m-0001" and document["token"] == TOKEN
    assert document["callback_url"] == "https://portal.example.org"
    assert "tigervncserver@:1.service" in document["services"]["enable"]


def test_the_last_step_is_the_bootstrap_agent() -> None:
    assert loaded(make_context())["runcmd"][-1] == ["/usr/local/sbin/daaas-bootstrap"]


# --- mounts, launchers, motd, CVMFS, HPC --------------------------------------------------------

def test_experiment_data_is_read_only_and_storage_read_write() -> None:
    mounts = {line[1]: line for line in loaded(make_context())["mounts"]}
    storage, experiment = mounts["/storage/alice"], mounts["/data/RB1234"]
    assert storage[2] == "nfs" and storage[3].split(",")[0] == "rw"
    assert "vers=4.2" in storage[3].split(",")
    assert experiment[2] == "ceph" and experiment[3].split(",")[0] == "ro"
    assert "rw" not in experiment[3].split(",")


def read_desktop_entry(content: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(content)
    assert parser.sections() == ["Desktop Entry"]
    return parser["Desktop Entry"]


def test_desktop_entries_point_into_cvmfs_in_menu_and_on_desktop() -> None:
    apps = [application("Coot"), application("Refmac 5", "/cvmfs/ccp4.example.org/bin/refmac5",
                                             terminal=True, icon="/cvmfs/ccp4.example.org/r.png")]
    files = files_of(loaded(make_context(apps=apps)))
    menu = files["/usr/share/applications/daaas-refmac-5.desktop"]
    desktop = files["/home/alice/Desktop/daaas-refmac-5.desktop"]
    assert menu["content"] == desktop["content"]
    assert (desktop["owner"], desktop["defer"], desktop["permissions"]) == ("alice:alice", True,
                                                                             "0755")
    entry = read_desktop_entry(menu["content"])
    assert entry["Exec"] == "/cvmfs/ccp4.example.org/bin/refmac5"
    assert entry["Terminal"] == "true" and entry["Icon"] == "/cvmfs/ccp4.example.org/r.png"
    coot = read_desktop_entry(files["/usr/share/applications/daaas-coot.desktop"]["content"])
    assert coot["Icon"] == "/usr/share/daaas/icons/coot.svg"
    assert coot["Categories"] == "Science;"


def test_hostile_strings_cannot_break_yaml_or_files() -> None:
    command = "/cvmfs/ccp4.example.org/bin/coot --title 'a \"b\" $HOME %f'"
    ctx = make_context(title=HOSTILE, apps=[application(HOSTILE, command)], full_name=HOSTILE)
    config = loaded(ctx)
    assert config == build_cloud_config(ctx)  # the YAML round-trips to exactly our structure
    assert "/etc/shadow" not in files_of(config)
    assert set(config) == {"bootcmd", "users", "disable_root", "ssh_pwauth", "write_files",
                           "mounts", "runcmd"}
    gecos = config["users"][0]["gecos"]
    assert "\n" not in gecos and ":" not in gecos
    entry_file = next(e for p, e in files_of(config).items() if p.startswith("/usr/share/app"))
    entry = read_desktop_entry(entry_file["content"])
    assert set(entry) == {"Version", "Type", "Name", "Comment", "Exec", "Icon", "Terminal",
                          "Categories", "X-Daaas-Environment"}
    assert entry["Name"].replace("\\n", "\n").replace("\\t", "\t").replace("\\\\", "\\") \
        == HOSTILE.strip()
    assert entry["Exec"] == ('/cvmfs/ccp4.example.org/bin/coot --title '
                             '"a \\\\"b\\\\" \\\\$HOME %%f"')
    motd = files_of(config)["/etc/motd"]["content"]
    assert "Evil: \"quoted\" 'single' #comment - path: /etc/shadow ---" in motd.splitlines()[0]


def test_motd_lists_mounts_environment_and_software() -> None:
    motd = files_of(loaded(make_context()))["/etc/motd"]["content"]
    assert "CCP4 crystallography desktop (ccp4)" in motd
    lines = motd.splitlines()
    storage = next(line for line in lines if "/storage/alice" in line)
    experiment = next(line for line in lines if "/data/RB1234" in line)
    assert "read-write" in storage and "Your storage" in storage
    assert "read-only" in experiment and "Experiment RB1234 (beamtime)" in experiment
    assert any(line.strip() == "/cvmfs/ccp4.example.org" for line in lines)
    assert "HPC cluster scarf" in motd


def test_cvmfs_client_configuration() -> None:
    files = files_of(loaded(make_context()))
    local = files["/etc/cvmfs/default.local"]["content"].splitlines()
    assert "CVMFS_REPOSITORIES=ccp4.example.org" in local
    assert "CVMFS_HTTP_PROXY='http://squid.example.org:3128;DIRECT'" in local
    assert "CVMFS_QUOTA_LIMIT=20000" in local
    repo = files["/etc/cvmfs/domain.d/example.org.local"]["content"].splitlines()
    assert "CVMFS_SERVER_URL=http://s1.example.org/cvmfs/@fqrn@" in repo
    assert "CVMFS_KEYS_DIR=/etc/cvmfs/keys/example.org" in repo
    assert files["/etc/cvmfs/keys/example.org/example.org.pub"]["content"] == PEM + "\n"


def test_default_local_is_valid_shell_with_the_values_intended(tmp_path: Any) -> None:
    site = {**SITE, "cvmfs": {"extra": {"CVMFS_DEBUGLOG": "/tmp/cvmfs debug.log"}}}
    local = files_of(loaded(make_context(site=site)))["/etc/cvmfs/default.local"]["content"]
    script = tmp_path / "default.local"
    script.write_text(local)
    shell = shutil.which("sh") or "/bin/sh"
    done = subprocess.run([shell, "-c", '. "$1"; printf "%s|%s" "$CVMFS_HTTP_PROXY" '
                           '"$CVMFS_DEBUGLOG"', "sh", str(script)], capture_output=True, text=True)
    assert done.stdout == "DIRECT|/tmp/cvmfs debug.log"


def test_hpc_profile_only_when_configured_and_without_credentials() -> None:
    with_hpc = files_of(loaded(make_context()))["/etc/profile.d/daaas-hpc.sh"]["content"]
    assert "export SLURM_CONF_SERVER=slurm.example.org:6817" in with_hpc
    assert "munge.key" not in with_hpc
    assert "SLURM_JWT=$(cat /etc/daaas/secrets/slurm.jwt)" in with_hpc  # read on the VM only
    without = files_of(loaded(make_context(site={"callback_url": "https://p.example.org"})))
    assert "/etc/profile.d/daaas-hpc.sh" not in without
    assert "/usr/share/applications/daaas-submit-to-hpc.desktop" not in without


def test_hpc_icon_opens_the_portals_jobs_page_for_this_machine() -> None:
    ctx = make_context()
    files = files_of(loaded(ctx))
    entry = files["/usr/share/applications/daaas-submit-to-hpc.desktop"]["content"]
    assert "Name=Submit to HPC\n" in entry
    assert f'Exec=xdg-open "{ctx.callback_url}/jobs?machine={ctx.machine_id}"\n' in entry
    assert files[f"{ctx.user.home}/Desktop/daaas-submit-to-hpc.desktop"]["content"] == entry
    document = json.loads(files["/etc/daaas/bootstrap.json"]["content"])
    assert "munge.service" not in document["services"]["enable"]  # the JWT needs no munge


def test_access_services_not_asked_for_are_not_configured() -> None:
    environment = make_environment(name="lite", protocols=["novnc"], applications=[],
                                   cvmfs_repositories=[])
    ctx = context_from_parts({"username": "bob", "uid": 20002, "gid": 20002}, "m-2",
                             environment, {"callback_url": "https://p.example.org"},
                             bootstrap_token=TOKEN)
    config = loaded(ctx)
    files = files_of(config)
    assert "/etc/xrdp/xrdp.ini" not in files and "/etc/tigervnc/vncserver.users" in files
    services = json.loads(files["/etc/daaas/bootstrap.json"]["content"])["services"]
    assert services == {"enable": ["tigervncserver@:1.service"],
                        "disable": ["xrdp.service", "ssh.service"]}
    assert "mounts" not in config and "ssh_authorized_keys" not in config["users"][0]


# --- size ----------------------------------------------------------------------------------------

def many_applications(count: int) -> list[dict[str, Any]]:
    return [application(f"Tool {n}", f"/cvmfs/ccp4.example.org/bin/tool{n} --mode {n}")
            for n in range(count)]


def test_hundreds_of_applications_are_gzipped_and_still_fit() -> None:
    user_data = render_user_data(make_context(apps=many_applications(400)))
    assert user_data[:2] == b"\x1f\x8b"
    assert len(base64.b64encode(user_data)) <= NOVA_USER_DATA_LIMIT
    assert len(decoded(user_data).encode()) > NOVA_USER_DATA_LIMIT  # it needed the gzip
    assert len(files_of(parse(decoded(user_data)))) > 800


def test_gzipped_user_data_passes_the_real_cloudinit_schema(cloudinit_python: str) -> None:
    validate_with_cloudinit(cloudinit_python, render_user_data(make_context(
        apps=many_applications(400))))


def test_small_user_data_stays_plain_text() -> None:
    assert render_user_data(make_context()).startswith(b"#cloud-config\n")


def test_absurd_environment_raises_user_data_too_large_naming_it() -> None:
    apps = [application(secrets.token_hex(16), f"/cvmfs/ccp4.example.org/{secrets.token_hex(24)}",
                        description=secrets.token_urlsafe(96)) for _ in range(1500)]
    with pytest.raises(UserDataTooLarge) as caught:
        render_user_data(make_context(apps=apps))
    assert "'ccp4'" in caught.value.user_message
    assert "support" in caught.value.user_message
    assert "1500 application launchers" in caught.value.log_message
    assert caught.value.size > NOVA_USER_DATA_LIMIT


def test_cvmfs_by_fstab_is_a_site_choice(cloudinit_python: str) -> None:
    site = {**SITE, "cvmfs": {**SITE["cvmfs"], "mount": "fstab"}}
    fstab = make_context(site=site)
    config = loaded(fstab)
    assert ["ccp4.example.org", "/cvmfs/ccp4.example.org", "cvmfs", "defaults,_netdev,nodev",
            "0", "0"] in config["mounts"]
    validate_with_cloudinit(cloudinit_python, render_user_data(fstab))
    autofs = loaded(make_context())
    assert not any(line[2] == "cvmfs" for line in autofs.get("mounts", []))
    document = json.loads(files_of(config)["/etc/daaas/bootstrap.json"]["content"])
    assert "autofs.service" not in document["services"]["enable"]
    auto_document = json.loads(files_of(autofs)["/etc/daaas/bootstrap.json"]["content"])
    assert "autofs.service" in auto_document["services"]["enable"]
