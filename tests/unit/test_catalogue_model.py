"""The environment model: visibility, serialisation, and the checks across fields."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from daaas.catalogue import DEFAULT_DIRECTORY, Environment, load_catalogue


def environment(**changes: Any) -> dict[str, Any]:
    """Return a valid resolved environment as data, with ``changes`` applied."""
    data: dict[str, Any] = {
        "name": "ccp4",
        "title": "CCP4",
        "description": "Crystallography.",
        "icon": "ccp4.svg",
        "image": {"name": "daaas-base-desktop"},
        "flavors": {"default": "m1.large", "allowed": ["m1.large", "g1.l40s-1"]},
        "cvmfs_repositories": ["ccp4.example.org"],
        "applications": [
            {
                "name": "Coot",
                "command": "/cvmfs/ccp4.example.org/bin/coot",
                "icon": "/cvmfs/ccp4.example.org/share/coot.svg",
                "category": "Science",
            }
        ],
        "protocols": ["novnc"],
        "limits": {"max_lifetime_hours": 24, "idle_timeout_minutes": 60},
    }
    return {**data, **changes}


@pytest.mark.parametrize(
    ("groups", "instruments", "visible"),
    [
        ([], [], False),
        (["mx-users"], [], True),
        ([], ["I24"], True),
        (["other"], ["WISH"], False),
        (["MX-USERS"], ["i24"], False),  # names are compared exactly
    ],
)
def test_visibility_needs_a_shared_group_or_instrument(
    groups: list[str], instruments: list[str], visible: bool
) -> None:
    env = Environment.model_validate(
        environment(access={"groups": ["mx-users"], "instruments": ["I03", "I24"]})
    )

    assert env.visible_to(groups, instruments) is visible


def test_no_access_restriction_means_everyone() -> None:
    env = Environment.model_validate(environment())

    assert env.visible_to([], [])


def test_catalogue_lists_what_a_user_may_launch() -> None:
    catalogue = load_catalogue(DEFAULT_DIRECTORY)

    mx_user = {env.name for env in catalogue.visible_to(groups=[], instruments=["I24"])}
    neutron_user = {env.name for env in catalogue.visible_to(groups=[], instruments=["WISH"])}

    assert {"ccp4", "dawn", "jupyter-python"} <= mx_user
    assert not {"mantid", "tomography-gpu"} & mx_user
    assert {"mantid", "dawn"} <= neutron_user
    assert "ccp4" not in neutron_user


def test_to_dict_round_trips_through_json() -> None:
    catalogue = load_catalogue(DEFAULT_DIRECTORY)

    for env in [*catalogue.environments.values(), *catalogue.abstract.values()]:
        data = json.loads(json.dumps(env.to_dict()))
        assert Environment.from_snapshot(data) == env
        assert data["name"] == env.name and isinstance(data["applications"], list)


def test_a_snapshot_loads_without_the_checks_across_fields_but_not_with_a_bad_field() -> None:
    """A machine launched under an older rule still loads; a field that is wrong does not."""
    older_rule = environment(cvmfs_repositories=["sft.cern.ch"])  # Coot's command is elsewhere
    with pytest.raises(ValidationError):
        Environment.model_validate(older_rule)

    assert Environment.from_snapshot(older_rule).cvmfs_repositories == ("sft.cern.ch",)
    with pytest.raises(ValidationError, match="unknown_field"):
        Environment.from_snapshot(environment(unknown_field=1))
    with pytest.raises(ValidationError, match="protocols"):
        Environment.from_snapshot(environment(protocols=[]))


@pytest.mark.parametrize(
    ("changes", "field", "start"),
    [
        ({"flavors": {"default": "m1.huge", "allowed": ["m1.large"]}},
         "flavors.default", "expected one of the allowed flavors (m1.large)"),
        ({"gpu": "optional"}, "flavors.gpu", "expected at least one GPU flavor"),
        ({"flavors": {"default": "m1.large", "allowed": ["m1.large"], "gpu": ["g1.x"]},
          "gpu": "optional"}, "flavors.gpu", "expected flavors also in flavors.allowed"),
        ({"flavors": {"default": "m1.large", "allowed": ["m1.large", "g1.x"], "gpu": ["g1.x"]}},
         "flavors.gpu", "expected no GPU flavors because gpu is 'none'"),
        ({"flavors": {"default": "m1.large", "allowed": ["m1.large", "g1.x"], "gpu": ["g1.x"]},
          "gpu": "required"}, "flavors.default", "expected a GPU flavor because gpu is 'required'"),
        ({"flavors": {"default": "g1.x", "allowed": ["m1.large", "g1.x"], "gpu": ["g1.x"]},
          "gpu": "required"}, "flavors.allowed", "expected only GPU flavors"),
        ({"cvmfs_repositories": ["sft.cern.ch"]}, "applications[Coot].command",
         "expected a path in one of the cvmfs_repositories (sft.cern.ch)"),
    ],
)  # fmt: skip
def test_consistency_checks(changes: dict[str, Any], field: str, start: str) -> None:
    env = Environment.model_validate(environment(**changes), context={"defer_checks": True})

    issues = [issue for issue in env.consistency_issues() if issue[0] == field]
    assert len(issues) == 1 and issues[0][1].startswith(start), env.consistency_issues()
    with pytest.raises(ValidationError, match="expected"):
        Environment.model_validate(environment(**changes))


def test_a_gpu_required_environment_with_only_gpu_flavors_is_valid() -> None:
    flavors = {"default": "g1.a100-1", "allowed": ["g1.a100-1"], "gpu": ["g1.a100-1"]}

    env = Environment.model_validate(environment(gpu="required", flavors=flavors))

    assert env.consistency_issues() == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"name": "CCP4 desktop"}, "name"),
        ({"image": {"name": "a", "tag": "b"}}, "image"),
        ({"image": {}}, "image"),
        ({"protocols": []}, "protocols"),
        ({"protocols": ["novnc", "novnc"]}, "protocols"),
        ({"cvmfs_repositories": ["Not A Repo"]}, "cvmfs_repositories.0"),
        ({"limits": {"max_lifetime_hours": 0, "idle_timeout_minutes": 60}},
         "limits.max_lifetime_hours"),
        ({"applications": [{"name": "X", "command": "/cvmfs/ccp4.example.org/../etc/passwd",
                            "icon": "x", "category": "Science"}]}, "applications.0.command"),
        ({"applications": [{"name": "X", "command": "/cvmfs/ccp4.example.org/x", "icon": "x",
                            "category": "Science", "terminal": "yes"}]}, "applications.0.terminal"),
    ],
)  # fmt: skip
def test_field_types_are_checked(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Environment.model_validate(environment(**changes))

    assert [".".join(map(str, e["loc"])) for e in caught.value.errors()] == [field]


def test_duplicate_keys_and_stray_files_are_reported(tmp_path: Path) -> None:
    (tmp_path / "twice.yaml").write_text("title: A\ntitle: B\n", encoding="utf-8")
    (tmp_path / "other.yml").write_text("title: A\n", encoding="utf-8")

    catalogue = load_catalogue(tmp_path)

    assert [str(p) for p in catalogue.problems] == [
        f"{tmp_path}/other.yml: not loaded: expected a .yaml file; rename it other.yaml",
        f"{tmp_path}/twice.yaml: line 2: invalid YAML (found the key 'title' twice; keep one); "
        "check the indentation, colons and quotes",
    ]


def test_a_name_in_the_file_must_be_the_file_name(tmp_path: Path) -> None:
    data = environment(name="mantid")
    (tmp_path / "ccp4.yaml").write_text(json.dumps(data), encoding="utf-8")  # JSON is YAML

    catalogue = load_catalogue(tmp_path)

    assert [(p.entry, p.field) for p in catalogue.problems] == [("ccp4", "name")]
    assert "expected 'ccp4', the file's name" in catalogue.problems[0].message
