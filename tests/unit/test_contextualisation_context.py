"""Building a Context from the portal's plain data: the tolerant environment adapter and errors."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from daaas.contextualisation import (
    AccessServices,
    Context,
    InvalidContext,
    Mount,
    context_from_parts,
)

TOKEN = "tok_" + "A1b2C3d4" * 4
USER = {"username": "alice", "uid": 20001, "gid": 20001, "full_name": "Alice Example",
        "ssh_public_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample alice@laptop"],
        "email": "alice@example.org"}
SITE = {"callback_url": "https://portal.example.org/"}
ENVIRONMENT: dict[str, Any] = {
    "name": "ccp4",
    "title": "CCP4 crystallography",
    "applications": [{"name": "Coot", "command": "/cvmfs/ccp4.example.org/bin/coot",
                      "icon": "coot.svg", "category": "Science", "terminal": False,
                      "description": "Model building"}],
    "cvmfs_repositories": ["ccp4.example.org"],
    "access": {"groups": ["mx"]},
    "protocols": ["novnc", "rdp", "ssh"],
    "gpu": "none",
}


def build(environment: dict[str, Any] | None = None, **overrides: Any) -> Context:
    parts: dict[str, Any] = {"user": USER, "machine_id": "m-0001",
                             "environment": ENVIRONMENT if environment is None else environment,
                             "site": SITE, "bootstrap_token": TOKEN}
    parts.update(overrides)
    return context_from_parts(parts.pop("user"), parts.pop("machine_id"),
                              parts.pop("environment"), parts.pop("site"), **parts)


def refusal(**overrides: Any) -> str:
    """Build with ``overrides``; return the user message of the InvalidContext it must raise."""
    with pytest.raises(InvalidContext) as caught:
        build(**overrides)
    return caught.value.user_message


def env_with(**changes: Any) -> dict[str, Any]:
    environment = copy.deepcopy(ENVIRONMENT)
    environment.update(changes)
    return environment


def test_builds_everything_from_plain_data() -> None:
    ctx = build(mounts=[{"kind": "nfs", "source": "fs1:/export/alice", "target": "/storage",
                         "purpose": "storage"}])
    assert ctx.environment_name == "ccp4" and ctx.title == "CCP4 crystallography"
    assert ctx.user.username == "alice" and ctx.user.group == "alice"
    assert ctx.user.home == "/home/alice"
    assert ctx.callback_url == "https://portal.example.org"
    assert ctx.cvmfs_repositories == ("ccp4.example.org",)
    assert ctx.launchers[0].argv == ["/cvmfs/ccp4.example.org/bin/coot"]
    assert ctx.access == AccessServices(vnc=True, xrdp=True, ssh=True)
    assert ctx.mounts[0].read_only is False
    assert not ctx.hpc.enabled


def test_token_is_kept_out_of_repr() -> None:
    assert TOKEN not in repr(build())


def test_adapter_tolerates_missing_none_and_unknown_keys() -> None:
    environment = {"name": "bare", "title": None, "applications": None, "icon": "x.svg",
                   "cvmfs_repositories": None, "flavors": {"default": "m1.large"}}
    ctx = build(environment)
    assert ctx.title == "bare"
    assert ctx.launchers == () and ctx.cvmfs_repositories == ()
    assert ctx.access == AccessServices(vnc=True, xrdp=False, ssh=False)


def test_adapter_accepts_other_spellings() -> None:
    environment = env_with(
        applications=[{"name": "Shell", "command": "/cvmfs/tools.example.org/bin/shell -l",
                       "terminal": "yes", "categories": ["Utility", "System"], "icon": None,
                       "comment": "A shell", "extra": 1}],
        cvmfs_repositories=[{"name": "data.example.org"}],
        protocols=None, access={"protocols": ["RDP"]})
    ctx = build(environment)
    launcher = ctx.launchers[0]
    assert launcher.terminal is True and launcher.category == "Utility;System"
    assert launcher.description == "A shell" and launcher.icon == ""
    # declared repositories first, then those the commands need
    assert ctx.cvmfs_repositories == ("data.example.org", "tools.example.org")
    assert ctx.access == AccessServices(vnc=False, xrdp=True, ssh=False)


def test_program_and_arguments_kept_apart_become_one_exact_argv() -> None:
    app = {"name": "Dials", "command": "/cvmfs/ccp4.example.org/bin/dials.image_viewer",
           "arguments": ["--title", "it's \"mine\"", "$HOME"]}
    [launcher] = build(env_with(applications=[app])).launchers
    assert launcher.argv == ["/cvmfs/ccp4.example.org/bin/dials.image_viewer", "--title",
                             "it's \"mine\"", "$HOME"]


def test_every_catalogue_environment_becomes_a_context() -> None:
    from daaas.catalogue.loader import DEFAULT_DIRECTORY, load_catalogue

    environments = load_catalogue(DEFAULT_DIRECTORY).environments
    assert environments
    for environment in environments.values():
        ctx = build(environment.to_dict())
        data = environment.to_dict()
        assert ctx.environment_name == data["name"]
        assert len(ctx.launchers) == len(data["applications"])
        assert set(data["cvmfs_repositories"]) <= set(ctx.cvmfs_repositories)


def test_unknown_protocols_fall_back_to_vnc() -> None:
    assert build(env_with(protocols=["telnet"])).access == AccessServices()


def test_program_outside_cvmfs_is_refused_naming_environment_and_field() -> None:
    environment = env_with(applications=[{"name": "Evil", "command": "/usr/bin/evil"}])
    message = refusal(environment=environment)
    assert "'ccp4'" in message and "/cvmfs/" in message


@pytest.mark.parametrize("command", ["/cvmfs/../etc/passwd", "/cvmfs/x/bin/a\nrm -rf /",
                                     "/cvmfs/NotAName/bin/a", "'/cvmfs/ccp4.example.org/a"])
def test_unsafe_commands_are_refused(command: str) -> None:
    with pytest.raises(InvalidContext):
        build(env_with(applications=[{"name": "A", "command": command}]))


def test_application_without_command_is_named() -> None:
    assert "Coot" in refusal(environment=env_with(applications=[{"name": "Coot"}]))


def test_environment_without_name_is_refused() -> None:
    assert "no name" in refusal(environment={"title": "Nameless"})


def test_unknown_site_setting_is_refused() -> None:
    with pytest.raises(InvalidContext) as caught:
        build(site={**SITE, "cvmfs_proxy": "x"})
    assert "cvmfs_proxy" in caught.value.log_message


@pytest.mark.parametrize("user", [
    {**USER, "username": "Root; rm"},
    {**USER, "uid": 0},
    {**USER, "home": "/etc/alice"},
    {**USER, "ssh_public_keys": ["ssh-rsa AAAA\nssh-rsa BBBB"]},
])
def test_bad_account_data_is_refused_for_the_user(user: dict[str, Any]) -> None:
    assert "Your account" in refusal(user=user)


@pytest.mark.parametrize("mount", [
    {"kind": "nfs", "source": "fs:/exp", "target": "/data/exp", "purpose": "experiment"},
    {"kind": "nfs", "source": "fs:/x", "target": "/etc"},
    {"kind": "nfs", "source": "fs:/x", "target": "/etc/ceph"},
    {"kind": "nfs", "source": "fs:/x", "target": "/cvmfs/ccp4.example.org"},
    {"kind": "nfs", "source": "fs:/x", "target": "/home"},
    {"kind": "nfs", "source": "fs:/x", "target": "/data/a b"},
    {"kind": "nfs", "source": "fs /x", "target": "/data/x"},
    {"kind": "smb", "source": "fs:/x", "target": "/data/x"},
    {"kind": "nfs", "source": "fs:/x", "target": "/data/x", "options": ["rw"]},
])
def test_bad_mounts_are_refused(mount: dict[str, Any]) -> None:
    assert "storage" in refusal(mounts=[mount])


def test_experiment_mount_defaults_nothing_it_must_say_read_only() -> None:
    mount = Mount(kind="cephfs", source="mon1,mon2:/exp/RB1", target="/data/RB1",
                  read_only=True, purpose="experiment", options=("name=alice", "nofail"))
    assert mount.fstab_options == "ro,name=alice,nofail,_netdev"


@pytest.mark.parametrize("site", [
    {"callback_url": "ftp://portal"},
    {"callback_url": "https://user:pw@portal.example.org"},
    {"callback_url": "https://portal.example.org/?next=1"},
    {**SITE, "cvmfs": {"http_proxy": "http://squid:3128\nCVMFS_X=1"}},
    {**SITE, "cvmfs": {"extra": {"PATH": "/tmp"}}},
    {**SITE, "hpc": {"slurmctld_host": "ctl; reboot"}},
    {**SITE, "vnc_geometry": "big"},
])
def test_bad_site_settings_are_refused(site: dict[str, Any]) -> None:
    assert "'ccp4'" in refusal(site=site)


def test_bad_token_and_machine_id_are_refused() -> None:
    with pytest.raises(InvalidContext):
        build(bootstrap_token="short")
    with pytest.raises(InvalidContext):
        build(machine_id="../../etc")
