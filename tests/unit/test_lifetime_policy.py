"""The lifetime policy: environment limits, overrides per flavor and group, extensions and the
warning thresholds (pure functions, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from daaas.catalogue.model import LifetimeOverride
from daaas.portal.config import ConfigError, load_settings, parse_hours_list
from daaas.portal.machines.lifetime import (
    extension_target,
    hours_text,
    latest_end,
    policy_for,
    warning_due,
)
from tests.support.environments import make_environment, shipped

H = timedelta(hours=1)
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def limits(**values: object) -> dict[str, object]:
    return {"limits": {"max_lifetime_hours": 168, "idle_timeout_minutes": 60, **values}}


def test_shipped_catalogue_policies() -> None:
    ccp4 = policy_for(shipped("ccp4"), "m1.large", ["diamond-users"])
    assert (ccp4.initial, ccp4.step, ccp4.maximum, ccp4.extension) == (72 * H, 24 * H,
                                                                       336 * H, "auto")
    gpu = policy_for(shipped("tomography-gpu"), "g1.a100-1", [])
    assert (gpu.initial, gpu.step, gpu.maximum, gpu.extension) == (24 * H, 12 * H, 72 * H,
                                                                   "approval")
    assert policy_for(shipped("tomography-gpu"), "g1.a100-2", []).maximum == 48 * H
    assert policy_for(shipped("base-desktop"), "m1.medium", ["staff"]).maximum == 720 * H
    assert policy_for(shipped("base-desktop"), "m1.medium", ["others"]).maximum == 168 * H


def test_without_initial_a_machine_lives_its_maximum_and_initial_never_exceeds_it() -> None:
    env = make_environment(**limits())
    assert policy_for(env, "m1.medium", []).initial == 168 * H
    env = make_environment(**limits(initial_lifetime_hours=500))
    assert policy_for(env, "m1.medium", []).initial == 168 * H


def test_overrides_apply_in_order_and_only_where_flavor_and_group_match() -> None:
    env = make_environment(**limits(initial_lifetime_hours=48, lifetime_overrides=[
        {"flavor": "m1.large", "max_lifetime_hours": 24, "extension": "none"},
        {"group": "staff", "max_lifetime_hours": 720, "extension_hours": 72},
        {"flavor": "m1.large", "group": "staff", "extension": "approval"}]))
    assert policy_for(env, "m1.medium", []).maximum == 168 * H
    large = policy_for(env, "m1.large", [])
    assert (large.initial, large.maximum, large.extension) == (24 * H, 24 * H, "none")
    staff_large = policy_for(env, "m1.large", ["staff"])
    assert (staff_large.maximum, staff_large.step, staff_large.extension) == (
        720 * H, 72 * H, "approval")
    assert policy_for(env, "m1.medium", ["staff"]).extension == "auto"


def test_an_override_must_name_a_flavor_or_a_group() -> None:
    with pytest.raises(ValidationError, match="'flavor', 'group' or both"):
        LifetimeOverride(max_lifetime_hours=3)
    with pytest.raises(ValidationError):
        make_environment(**limits(extension="sometimes"))


def test_extension_moves_by_one_step_and_stops_at_the_latest_end() -> None:
    policy = policy_for(make_environment(**limits(initial_lifetime_hours=72,
                                                  extension_hours=48)), "m1.medium", [])
    end = T0 + policy.initial
    end = extension_target(T0, end, policy)
    assert end == T0 + 120 * H
    end = extension_target(T0, end, policy)
    assert end == T0 + 168 * H == latest_end(T0, policy)  # 72 + 48 + 48 would pass 168
    assert extension_target(T0, end, policy) is None


def test_warning_due_is_the_nearest_threshold_only() -> None:
    thresholds = (48.0, 2.0)
    assert warning_due(72 * H, thresholds) is None
    assert warning_due(47 * H, thresholds) == 48.0
    assert warning_due(2 * H, thresholds) == 2.0
    assert warning_due(30 * timedelta(minutes=1), thresholds) == 2.0
    assert warning_due(timedelta(0), thresholds) is None
    assert warning_due(-H, thresholds) is None


def test_hours_in_words() -> None:
    assert hours_text(H) == "1 hour"
    assert hours_text(12 * H) == "12 hours"
    assert hours_text(24 * H) == "1 day"
    assert hours_text(30 * H) == "1 day 6 hours"
    assert hours_text(336 * H) == "14 days"


def test_warning_hours_setting_is_checked() -> None:
    assert parse_hours_list("2, 48,0.5") == (48.0, 2.0, 0.5)
    assert parse_hours_list("") == ()
    with pytest.raises(ValueError, match="not 'soon'"):
        parse_hours_list("48, soon")
    with pytest.raises(ConfigError, match="expiry_warning_hours"):
        load_settings({"expiry_warning_hours": "-1", "var_dir": "/tmp/x"})


def test_smtp_password_is_masked_by_config_show() -> None:
    settings = load_settings({"smtp_password": "hunter2", "smtp_host": "mail.example.org",
                              "var_dir": "/tmp/x"})
    masked = settings.masked()
    assert masked["smtp_password"] == "***" and masked["smtp_host"] == "mail.example.org"
