"""Building a Context from the portal's data: the typed catalogue environment, the account and
the site settings, and the errors a person can act on."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from daaas.catalogue import Environment
from daaas.contextualisation import (
    AccessServices,
    Context,
    InvalidContext,
    Mount,
    context_from_parts,
)
from tests.support.environments import make_environment

TOKEN = "tok_" + "A1b2C3d4" * 4
USER = {"username": "alice", "uid": 20001, "gid": 20001, "full_name": "Alice Example",
        "ssh_public_keys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIExample alice@laptop"],
        "email": "alice@example.org"}
SITE = {"callback_url": "https://portal.example.org/"}
COOT = {"name": "Coot", "command": "/cvmfs/ccp4.example.org/bin/coot", "icon": "coot.svg",
        "category": "Science", "terminal": False, "description": "Model building"}


def env_with(**changes: Any) -> Environment:
    """The test's CCP4 environment (one application, three protocols) with ``changes``."""
    fields: dict[str, Any] = {
        "name": "ccp4", "title": "CCP4 crystallography", "applications": [COOT],
        "cvmfs_repositories": ["ccp4.example.org"], "access": {"groups": ["mx"]},
        "protocols": ["novnc", "rdp", "ssh"], "gpu": "none"}
    return make_environment(**{**fields, **changes})


def build(environment: Environment | None = None, **overrides: Any) -> Context:
    parts: dict[str, Any] = {"user": USER, "machine_id": "m-0001",
                             "environment": env_with() if environment is None else environment,
                             "site": SITE, "bootstrap_token": TOKEN}
    parts.update(overrides)
    return context_from_parts(parts.pop("user"), parts.pop("machine_id"),
                              parts.pop("environment"), parts.pop("site"), **parts)


def refusal(**overrides: Any) -> str:
    """Build with ``overrides``; return the user message of the InvalidContext it must raise."""
    with pytest.raises(InvalidContext) as caught:
        build(**overrides)
    return caught.value.user_message


def test_builds_everything_from_the_portal_data() -> None:
    ctx = build(mounts=[{"kind": "nfs", "source": "fs1:/export/alice", "target": "/storage",
                         "purpose": "storage"}])
    assert ctx.environment_name == "ccp4" and ctx.title == "CCP4 crystallography"
    assert ctx.user.username == "alice" and ctx.user.group == "alice"
    assert ctx.user.home == "/home/alice"
    assert ctx.callback_url == "https://portal.example.org"
    assert ctx.cvmfs_repositories == ("ccp4.example.org",)
    assert ctx.launchers[0].argv == ["/cvmfs/ccp4.example.org/bin/coot"]
    assert ctx.launchers[0].description == "Model building"
    assert ctx.access == AccessServices(vnc=True, xrdp=True, ssh=True)
    assert ctx.mounts[0].read_only is False
    assert not ctx.hpc.enabled


def test_token_is_kept_out_of_repr() -> None:
    assert TOKEN not in repr(build())


def test_repositories_listed_come_first_then_those_the_commands_need() -> None:
    shell = {"name": "Shell", "command": "/cvmfs/tools.example.org/bin/shell", "terminal": True,
             "icon": "utilities-terminal", "category": "System"}
    ctx = build(env_with(applications=[shell], cvmfs_repositories=["data.example.org"]))
    assert ctx.cvmfs_repositories == ("data.example.org", "tools.example.org")
    assert ctx.launchers[0].terminal is True and ctx.launchers[0].category == "System"


@pytest.mark.parametrize(("protocols", "services"), [
    (["novnc"], AccessServices(vnc=True, xrdp=False, ssh=False)),
    (["rdp"], AccessServices(vnc=False, xrdp=True, ssh=False)),
    (["novnc", "ssh"], AccessServices(vnc=True, xrdp=False, ssh=True)),
])
def test_protocols_choose_the_services(protocols: list[str], services: AccessServices) -> None:
    assert build(env_with(protocols=protocols)).access == services


def test_program_and_arguments_kept_apart_become_one_exact_argv() -> None:
    app = {**COOT, "name": "Dials", "command": "/cvmfs/ccp4.example.org/bin/dials.image_viewer",
           "arguments": ["--title", "it's \"mine\"", "$HOME"]}
    [launcher] = build(env_with(applications=[app])).launchers
    assert launcher.argv == ["/cvmfs/ccp4.example.org/bin/dials.image_viewer", "--title",
                             "it's \"mine\"", "$HOME"]


def test_every_catalogue_environment_becomes_a_context() -> None:
    from daaas.catalogue.loader import DEFAULT_DIRECTORY, load_catalogue

    environments = load_catalogue(DEFAULT_DIRECTORY).environments
    assert environments
    for environment in environments.values():
        ctx = build(environment)
        assert ctx.environment_name == environment.name
        assert len(ctx.launchers) == len(environment.applications)
        assert set(environment.cvmfs_repositories) <= set(ctx.cvmfs_repositories)


def test_a_launcher_the_desktop_cannot_take_is_refused_naming_environment_and_application(
) -> None:
    bad = {**COOT, "command": "/cvmfs/NotAName/bin/coot"}  # a path, but no repository name
    message = refusal(environment=env_with(applications=[bad]))
    assert "'ccp4'" in message and "Coot" in message


@pytest.mark.parametrize("command", ["/cvmfs/../etc/passwd", "/cvmfs/x/bin/a\nrm -rf /",
                                     "/cvmfs/NotAName/bin/a", "'/cvmfs/ccp4.example.org/a",
                                     "/usr/bin/evil"])
def test_unsafe_commands_never_reach_a_machine(command: str) -> None:
    """Refused by the catalogue's model, or else when the context is built."""
    with pytest.raises((ValidationError, InvalidContext)):
        build(env_with(applications=[{**COOT, "command": command}]))


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
