"""Choosing a provider by name, the typed errors, and what the interface promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from daaas.portal.backends import BackendUnavailable
from daaas.portal.config import load_settings
from daaas.portal.errors import PortalError
from daaas.portal.providers import (
    PROVIDERS,
    LaunchSpec,
    MissingSystemPackages,
    Provider,
    ProviderUnavailable,
)
from daaas.portal.providers.errors import (
    CapacityExhausted,
    LaunchFailed,
    MachineGone,
    ProviderError,
)
from daaas.portal.providers.local import LocalProvider
from daaas.portal.providers.openstack import OpenStackProvider
from daaas.portal.providers.qemu import QemuProvider
from tests.support.environments import make_environment
from tests.support.providers import (
    FailingProvider,
    InMemoryProvider,
    NeverReadyProvider,
    SlowProvider,
)


@pytest.mark.parametrize(("name", "cls"), [
    ("local", LocalProvider), ("openstack", OpenStackProvider), ("qemu", QemuProvider),
    ("memory", InMemoryProvider), ("slow", SlowProvider), ("never-ready", NeverReadyProvider),
    ("failing", FailingProvider),
])
def test_names_resolve_to_their_classes(name: str, cls: type[Provider]) -> None:
    assert PROVIDERS.resolve(name) is cls
    assert cls.name == name


def test_the_portal_registers_only_real_providers_and_imports_them_when_chosen() -> None:
    code = ("import sys; from daaas.portal.providers import PROVIDERS; "
            "print(PROVIDERS.names(), 'openstack' in sys.modules, 'Xlib' in sys.modules)")
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True).stdout
    assert shown.strip() == "['local', 'openstack', 'qemu'] False False"


def test_settings_build_the_local_provider(tmp_path: Path) -> None:
    settings = load_settings({"var_dir": str(tmp_path), "local_max_sessions": 3}, environ={})
    provider = PROVIDERS.build(settings)
    assert isinstance(provider, LocalProvider)
    assert provider.sessions_dir == tmp_path.resolve() / "sessions"
    assert provider.max_sessions == 3


def test_settings_build_the_openstack_provider() -> None:
    settings = load_settings({"provider": "openstack", "openstack_cloud": "site",
                              "openstack_security_groups": "vnc, ssh,,",
                              "openstack_access_mode": "floating",
                              "openstack_server_tag": "daaas-x",
                              "openstack_vnc_proxy_cidr": "192.0.2.10"}, environ={})
    provider = PROVIDERS.build(settings)
    assert isinstance(provider, OpenStackProvider)
    assert (provider.cloud, provider.access_mode, provider.server_tag) == (
        "site", "floating", "daaas-x")
    assert provider.security_groups == ["vnc", "ssh"]
    assert provider.vnc_proxy_cidrs == ["192.0.2.10/32"]


def test_a_test_double_is_chosen_by_name_in_settings() -> None:
    provider = PROVIDERS.build(load_settings({"provider": "never-ready"}, environ={}))
    assert type(provider) is NeverReadyProvider


def test_a_module_class_path_names_a_facility_provider() -> None:
    chosen = load_settings({"provider": "tests.support.providers:SlowProvider"}, environ={})
    assert type(PROVIDERS.build(chosen)) is SlowProvider
    for path, complaint in (("tests.support.providers:Nothing", "cannot be imported"),
                            ("daaas.portal.config:Settings", "not a subclass")):
        with pytest.raises(BackendUnavailable, match=complaint):
            PROVIDERS.resolve(path)


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(BackendUnavailable) as raised:
        PROVIDERS.build(load_settings({"provider": "openstak"}, environ={}))
    assert "'openstak'" in raised.value.user_message
    assert "local" in raised.value.user_message and "memory" in raised.value.user_message


def test_unusable_settings_are_a_configuration_error() -> None:
    with pytest.raises(BackendUnavailable, match="'openstack' cannot be configured: "
                                                 "openstack_cloud must name a cloud"):
        PROVIDERS.build(load_settings({"provider": "openstack"}, environ={}))


def test_errors_are_portal_errors_with_separate_log_message() -> None:
    for cls in (CapacityExhausted, LaunchFailed, MachineGone, ProviderUnavailable):
        error = cls("Try again later.", "quota 8/8 on project p")
        assert isinstance(error, ProviderError) and isinstance(error, PortalError)
        assert (error.user_message, error.log_message) == ("Try again later.",
                                                          "quota 8/8 on project p")
    assert MachineGone("gone").log_message == "gone"


def test_missing_system_packages_names_the_apt_command() -> None:
    error = MissingSystemPackages(["Xvnc", "vncpasswd", "Xvnc"],
                                  ["tigervnc-standalone-server", "tigervnc-tools",
                                   "tigervnc-standalone-server"])
    assert isinstance(error, ProviderUnavailable)
    assert error.packages == ["tigervnc-standalone-server", "tigervnc-tools"]
    assert error.user_message.endswith(
        "Install them with: apt-get install tigervnc-standalone-server tigervnc-tools")
    assert "Xvnc, vncpasswd not found" in error.user_message


def test_launch_spec_never_shows_the_password() -> None:
    spec = LaunchSpec("m1", "alice", 20000, 20000, make_environment(), "hunter22")
    assert "hunter22" not in repr(spec)
    assert spec.geometry == "1280x800"


def test_provider_is_abstract() -> None:
    with pytest.raises(TypeError):
        Provider()  # type: ignore[abstract]
