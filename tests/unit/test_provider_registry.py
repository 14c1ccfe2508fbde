"""Choosing a provider by name, the typed errors, and what the interface promises."""

from __future__ import annotations

import pytest

from daaas.portal.errors import PortalError
from daaas.portal.providers import (
    PROVIDERS,
    FailingProvider,
    InMemoryProvider,
    LaunchSpec,
    LocalProvider,
    MissingSystemPackages,
    NeverReadyProvider,
    Provider,
    ProviderUnavailable,
    SlowProvider,
    make_provider,
)
from daaas.portal.providers.errors import (
    CapacityExhausted,
    LaunchFailed,
    MachineGone,
    ProviderError,
)


@pytest.mark.parametrize(("name", "cls"), [
    ("local", LocalProvider), ("memory", InMemoryProvider), ("slow", SlowProvider),
    ("never-ready", NeverReadyProvider), ("failing", FailingProvider),
])
def test_make_provider_by_name(name: str, cls: type[Provider], tmp_path: object) -> None:
    options = {"var_dir": tmp_path} if name == "local" else {}
    provider = make_provider(name, **options)
    assert type(provider) is cls
    assert provider.name == name
    assert PROVIDERS[name] is cls


def test_make_provider_passes_options() -> None:
    provider = make_provider("memory", ready_after_polls=7, max_sessions=3)
    assert isinstance(provider, InMemoryProvider)
    assert (provider.ready_after_polls, provider.capacity().sessions_total) == (7, 3)


def test_unknown_name_lists_the_choices() -> None:
    with pytest.raises(ProviderUnavailable) as raised:
        make_provider("openstak")
    assert "'openstak'" in raised.value.user_message
    assert "local" in raised.value.user_message and "memory" in raised.value.user_message


@pytest.mark.parametrize("options", [{"colour": "red"}, {"desktop": "kde"}])
def test_bad_options_are_a_configuration_error(options: dict[str, str]) -> None:
    with pytest.raises(ProviderUnavailable, match="'local' provider cannot be configured"):
        make_provider("local", **options)


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
    spec = LaunchSpec("m1", "alice", 20000, 20000, {"name": "base"}, "hunter22")
    assert "hunter22" not in repr(spec)
    assert spec.geometry == "1280x800"


def test_provider_is_abstract() -> None:
    with pytest.raises(TypeError):
        Provider()  # type: ignore[abstract]
