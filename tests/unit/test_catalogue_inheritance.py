"""Inheritance (`extends:`): what a child keeps, overrides, merges and drops."""

from __future__ import annotations

from pathlib import Path

import pytest

from daaas.catalogue import Catalogue, Environment, load_catalogue

PARENT = """\
abstract: true
title: Base desktop
description: A plain desktop.
icon: desktop.svg
image: {name: daaas-base-desktop}
gpu: none
flavors: {default: m1.large, allowed: [m1.large, m1.xlarge]}
cvmfs_repositories: [desktop.example.org, sft.cern.ch]
applications:
  - {name: Terminal, command: /cvmfs/desktop.example.org/bin/terminal, icon: utilities-terminal,
     category: System}
  - {name: Files, command: /cvmfs/desktop.example.org/bin/files, icon: system-file-manager,
     category: Utility}
  - {name: Editor, command: /cvmfs/desktop.example.org/bin/editor, icon: accessories-text-editor,
     category: Utility}
protocols: [novnc, rdp, ssh]
access: {groups: [staff], instruments: [I03]}
limits: {max_lifetime_hours: 24, idle_timeout_minutes: 60}
"""

CHILD = """\
extends: base
title: Crystallography
gpu: optional
image: {tag: gpu-desktop}
flavors: {allowed: [m1.large, g1.l40s-1], gpu: [g1.l40s-1]}
cvmfs_repositories: [ccp4.example.org, sft.cern.ch]
remove_applications: [Editor]
applications:
  - {name: Files, command: /cvmfs/ccp4.example.org/bin/files, icon: folder, category: Utility}
  - {name: Coot, command: /cvmfs/ccp4.example.org/bin/coot, icon: coot, category: Science}
access: {instruments: [I04, I24]}
limits: {idle_timeout_minutes: 30}
"""


def load(tmp_path: Path, **entries: str) -> Catalogue:
    """Write base.yaml (PARENT) and the given entries; return the loaded catalogue."""
    for name, text in {"base": PARENT, **entries}.items():
        (tmp_path / f"{name.replace('_', '-')}.yaml").write_text(text, encoding="utf-8")
    return load_catalogue(tmp_path)


@pytest.fixture
def child(tmp_path: Path) -> Environment:
    catalogue = load(tmp_path, child=CHILD)
    assert catalogue.problems == []
    return catalogue.environments["child"]


def test_child_overrides_scalars_and_keeps_the_rest(child: Environment) -> None:
    assert (child.title, child.gpu) == ("Crystallography", "optional")
    assert (child.description, child.icon) == ("A plain desktop.", "desktop.svg")
    assert child.protocols == ("novnc", "rdp", "ssh")
    assert child.extends == "base"


def test_abstract_is_not_inherited(tmp_path: Path) -> None:
    catalogue = load(tmp_path, child=CHILD)

    assert list(catalogue.abstract) == ["base"]
    assert list(catalogue.environments) == ["child"]
    assert not catalogue.environments["child"].abstract


def test_mappings_merge_key_by_key(child: Environment) -> None:
    assert (child.limits.max_lifetime_hours, child.limits.idle_timeout_minutes) == (24, 30)
    assert child.flavors.default == "m1.large"
    assert child.flavors.allowed == ("m1.large", "g1.l40s-1")


def test_lists_inside_mappings_are_replaced(child: Environment) -> None:
    assert child.access.instruments == ("I04", "I24")
    assert child.access.groups == ("staff",)


def test_image_is_replaced_whole(child: Environment) -> None:
    assert (child.image.name, child.image.tag) == (None, "gpu-desktop")


def test_applications_extend_replace_in_place_and_remove(child: Environment) -> None:
    assert [app.name for app in child.applications] == ["Terminal", "Files", "Coot"]
    assert child.applications[1].command == "/cvmfs/ccp4.example.org/bin/files"


def test_repositories_are_an_ordered_union(child: Environment) -> None:
    assert child.cvmfs_repositories == ("desktop.example.org", "sft.cern.ch", "ccp4.example.org")


def test_grandchild_inherits_through_its_parent(tmp_path: Path) -> None:
    grandchild = "extends: child\ntitle: Grandchild\nlimits: {max_lifetime_hours: 8}\n"

    catalogue = load(tmp_path, child=CHILD, grandchild=grandchild)

    env = catalogue.environments["grandchild"]
    assert (env.limits.max_lifetime_hours, env.limits.idle_timeout_minutes) == (8, 30)
    assert [app.name for app in env.applications] == ["Terminal", "Files", "Coot"]
    assert env.image.tag == "gpu-desktop"


def test_removing_an_application_that_is_not_inherited_is_a_problem(tmp_path: Path) -> None:
    catalogue = load(tmp_path, child="extends: base\ntitle: C\nremove_applications: [Coot]\n")

    (problem,) = catalogue.invalid["child"]
    assert problem.field == "remove_applications"
    assert problem.message == (
        "expected the name of an inherited application (Terminal, Files, Editor) (got 'Coot')"
    )


def test_a_wrong_type_in_the_parent_is_reported_against_the_parent(tmp_path: Path) -> None:
    (tmp_path / "base.yaml").write_text(PARENT.replace("24", "'24'"), encoding="utf-8")
    (tmp_path / "child.yaml").write_text(CHILD, encoding="utf-8")

    catalogue = load_catalogue(tmp_path)

    assert [(p.entry, p.field) for p in catalogue.problems] == [
        ("base", "limits.max_lifetime_hours"),
        ("child", "extends"),
    ]
    assert catalogue.environments == {} and catalogue.abstract == {}


def test_a_child_checks_consistency_on_the_merged_result(tmp_path: Path) -> None:
    # gpu: optional without GPU flavors, and Coot's repository not listed anywhere.
    text = "extends: base\ntitle: C\ngpu: optional\napplications:\n" + (
        "  - {name: Coot, command: /cvmfs/ccp4.example.org/bin/coot, icon: x, category: Science}\n"
    )

    catalogue = load(tmp_path, child=text)

    assert [(p.field, p.message[:40]) for p in catalogue.invalid["child"]] == [
        ("flavors.gpu", "expected at least one GPU flavor because"),
        ("applications[Coot].command", "expected a path in one of the cvmfs_repo"),
    ]


def test_a_child_file_is_checked_for_types_on_its_own(tmp_path: Path) -> None:
    text = "extends: base\ntitle: 5\nflavours: {}\nprotocols: [vnc]\n"

    catalogue = load(tmp_path, child=text)

    assert [str(p).split(": ", 1)[1] for p in catalogue.invalid["child"]] == [
        "field 'title': expected text (got 5)",
        "field 'protocols[0]': expected one of novnc, rdp, ssh (got 'vnc')",
        "field 'flavours': unknown field; expected one of: name, title, description, icon, "
        "abstract, extends, image, flavors, gpu, cvmfs_repositories, applications, protocols, "
        "access, limits, hpc_partitions, remove_applications; did you mean 'flavors'?",
    ]
