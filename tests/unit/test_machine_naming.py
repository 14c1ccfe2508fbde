"""Machine names and desktop paths (portal/machines/naming.py): defaults, uniqueness, checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from daaas.portal.config import Settings
from daaas.portal.errors import InvalidInput
from daaas.portal.machines.naming import (
    MAX_NAME,
    clean_name,
    default_name,
    experiment_on_desktop,
    size_label,
    storage_on_desktop,
    unique_name,
    when_text,
)

DAY = datetime(2026, 12, 3, 8, 21, tzinfo=UTC)


def test_default_name_is_environment_visit_and_day() -> None:
    assert default_name("Analysis desktop", "MX31850-12", DAY) == \
        "Analysis desktop · MX31850-12 · 3 Dec"
    assert default_name("Analysis desktop", None, DAY) == "Analysis desktop · 3 Dec"
    assert default_name("  Odd \n title ", "", DAY) == "Odd title · 3 Dec"
    assert when_text(DAY) == "3 Dec 2026, 08:21 UTC"


def test_a_long_title_is_cut_keeping_visit_and_day() -> None:
    name = default_name("T" * 200, "MX31850-12", DAY)
    assert len(name) == MAX_NAME and name.endswith("T… · MX31850-12 · 3 Dec")


def test_unique_name_numbers_repeats_and_fits() -> None:
    assert unique_name("a", set()) == "a"
    assert unique_name("a", {"a"}) == "a (2)"
    assert unique_name("a", {"a", "a (2)"}) == "a (3)"
    full = "x" * MAX_NAME
    again = unique_name(full, {full})
    assert len(again) == MAX_NAME and again.endswith("x (2)")


@pytest.mark.parametrize(("raw", "reason"), [
    ("", "1 to 80"), ("   ", "1 to 80"), ("x" * 81, "at most 80"), ("a\nb", "line breaks"),
    ("a\u200bb", "control"), (None, "must be text")])
def test_clean_name_refuses_with_the_reason(raw: object, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        clean_name(raw)


def test_clean_name_keeps_printable_text() -> None:
    assert clean_name("  Crystal 2 · 結晶 ✓ ") == "Crystal 2 · 結晶 ✓"
    assert clean_name("x" * 80) == "x" * 80


def test_desktop_paths_and_sizes() -> None:
    settings = Settings.model_validate({"secret_key": "k"})
    assert experiment_on_desktop(Settings(), "local", "MX31850-12") == "~/experiment-MX31850-12"
    assert experiment_on_desktop(Settings(), "openstack", "MX31850-12") is None
    exported = Settings(experiment_export="nfs")
    assert experiment_on_desktop(exported, "openstack", "MX31850-12") == "~/experiment-MX31850-12"
    assert storage_on_desktop(settings, "local") == "~/storage"
    assert storage_on_desktop(settings, "openstack") is None  # portal-local storage
    assert storage_on_desktop(settings.model_copy(update={"storage_backend": "nfs"}),
                              "openstack") == "~/storage"
    assert size_label(settings, "m1.large") == "4 cores · 16 GiB"
    assert size_label(settings, "custom.flavor") == "custom.flavor"
