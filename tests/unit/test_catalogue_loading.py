"""Loading catalogue folders: the shipped demo catalogue, broken files and `catalogue check`."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from daaas.catalogue import DEFAULT_DIRECTORY, ICONS_DIRECTORY, load_catalogue
from daaas.catalogue.cli import catalogue_group

BASE = """\
abstract: true
title: Base desktop
description: A plain desktop.
icon: desktop.svg
image: {name: daaas-base-desktop}
flavors: {default: m1.large, allowed: [m1.large, m1.xlarge]}
cvmfs_repositories: [desktop.example.org]
applications:
  - name: Terminal
    command: /cvmfs/desktop.example.org/launchers/terminal
    icon: utilities-terminal
    category: System
protocols: [novnc, ssh]
limits: {max_lifetime_hours: 24, idle_timeout_minutes: 60}
"""

# Each broken file has exactly one problem: (field, the problem's text after "<path>: ").
BROKEN = {
    "missing-field": (
        BASE.replace("abstract: true\n", "").replace("limits: {", "# limits: {"),
        "field 'limits': required field is missing; add it (or inherit it: 'extends: <parent>')",
    ),
    "wrong-type": (
        "extends: base\ntitle: Wrong\nlimits: {max_lifetime_hours: twelve}\n",
        "field 'limits.max_lifetime_hours': expected a whole number (got 'twelve')",
    ),
    "bad-gpu": (
        "extends: base\ntitle: Bad GPU\ngpu: maybe\n",
        "field 'gpu': expected one of none, optional, required (got 'maybe')",
    ),
    "orphan": (
        "extends: bsae\ntitle: Orphan\n",
        "field 'extends': expected the name of another entry, but there is no bsae.yaml "
        "(got 'bsae'); did you mean 'base'?",
    ),
    "cycle-a": (
        "extends: cycle-b\ntitle: A\n",
        "field 'extends': expected no inheritance cycle, found cycle-a -> cycle-b -> cycle-a; "
        "remove 'extends' from one of these entries",
    ),
    "cycle-b": (
        "extends: cycle-a\ntitle: B\n",
        "field 'extends': expected no inheritance cycle, found cycle-b -> cycle-a -> cycle-b; "
        "remove 'extends' from one of these entries",
    ),
    "selfish": (
        "extends: selfish\ntitle: Self\n",
        "field 'extends': expected no inheritance cycle, found selfish -> selfish; "
        "remove 'extends' from one of these entries",
    ),
    "bad-yaml": (
        "title: Bad\ndescription: [unclosed\nicon: desktop.svg\n",
        "line 3: invalid YAML (expected ',' or ']', but got ':' while parsing a flow sequence "
        "from line 2); "
        "check the indentation, colons and quotes",
    ),
    "child-of-wrong": (
        "extends: wrong-type\ntitle: Child\n",
        "field 'extends': parent 'wrong-type' is invalid; fix it first",
    ),
}


def write(folder: Path, entries: dict[str, str]) -> Path:
    """Write each entry as <name>.yaml into folder; return the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in entries.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def broken_folder(tmp_path: Path) -> Path:
    entries = {"base": BASE, "good": "extends: base\ntitle: Good\n"}
    entries.update({name: text for name, (text, _) in BROKEN.items()})
    return write(tmp_path / "environments", entries)


def test_shipped_catalogue_loads_without_problems() -> None:
    catalogue = load_catalogue(DEFAULT_DIRECTORY)

    assert catalogue.problems == []
    assert catalogue.invalid == {}
    assert len(catalogue.environments) >= 5
    assert {"ccp4", "mantid", "dawn", "tomography-gpu"} <= set(catalogue.environments)
    assert catalogue.abstract == {}
    assert "base-desktop" in catalogue.environments  # the plain desktop is launchable too
    children = [e for e in catalogue.environments.values() if e.extends == "base-desktop"]
    assert len(children) >= 4


def test_shipped_catalogue_is_sorted_by_title_and_fully_resolved() -> None:
    catalogue = load_catalogue(DEFAULT_DIRECTORY)
    titles = [env.title for env in catalogue.environments.values()]

    assert titles == sorted(titles, key=str.casefold)
    for env in catalogue.environments.values():
        assert env.extends == ("base-desktop" if env.name != "base-desktop" else None)
        assert env.image.name or env.image.tag
        assert "desktop.daaas.ac.uk" in env.cvmfs_repositories
        assert env.applications and env.protocols
        assert (ICONS_DIRECTORY / env.icon).is_file()
    tomography = catalogue.environments["tomography-gpu"]
    assert tomography.gpu == "required"
    assert tomography.flavors.default in tomography.flavors.gpu


def test_shipped_icons_are_svg_files() -> None:
    icons = sorted(ICONS_DIRECTORY.glob("*.svg"))

    assert len(icons) >= 6
    for icon in icons:
        assert icon.read_text(encoding="utf-8").startswith("<svg ")


def test_each_broken_file_has_one_precise_problem(broken_folder: Path) -> None:
    catalogue = load_catalogue(broken_folder)

    got: dict[str | None, list[str]] = {}
    for problem in catalogue.problems:
        got.setdefault(problem.entry, []).append(str(problem))
    want = {name: [f"{broken_folder / name}.yaml: {text}"] for name, (_, text) in BROKEN.items()}
    assert got == want
    assert set(catalogue.invalid) == set(BROKEN)


def test_valid_entries_load_next_to_broken_ones(broken_folder: Path) -> None:
    catalogue = load_catalogue(broken_folder)

    assert list(catalogue.environments) == ["good"]
    assert list(catalogue.abstract) == ["base"]
    assert catalogue.environments["good"].limits.max_lifetime_hours == 24


def test_problems_carry_path_entry_field_and_line(broken_folder: Path) -> None:
    catalogue = load_catalogue(broken_folder)

    (wrong,) = catalogue.invalid["wrong-type"]
    assert (wrong.path, wrong.entry, wrong.field) == (
        broken_folder / "wrong-type.yaml",
        "wrong-type",
        "limits.max_lifetime_hours",
    )
    (bad_yaml,) = catalogue.invalid["bad-yaml"]
    assert (bad_yaml.field, bad_yaml.line) == (None, 3)


def test_check_command_prints_every_problem_and_exits_1(broken_folder: Path,
                                                         tmp_path: Path) -> None:
    registry = tmp_path / "registry.yaml"
    registry.write_text("domains:\n  example.org:\n    server_urls: "
                        "[http://s1.example.org/cvmfs/@fqrn@]\n    public_keys: [example.org.pub]\n"
                        "repositories:\n  - name: desktop.example.org\n")
    result = CliRunner().invoke(catalogue_group, ["check", str(broken_folder),
                                                  "--cvmfs-registry", str(registry)])

    assert result.exit_code == 1
    lines = result.output.splitlines()
    for name, (_, text) in BROKEN.items():
        assert f"{broken_folder / name}.yaml: {text}" in lines
    assert lines[-1] == f"2 environments valid (1 abstract), {len(BROKEN)} invalid"
    assert len(lines) == len(BROKEN) + 1


def test_check_command_exits_0_on_the_shipped_catalogue() -> None:
    result = CliRunner().invoke(catalogue_group, ["check"])

    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["7 environments valid, 0 invalid"]


def test_missing_folder_is_a_problem_not_an_exception(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"

    catalogue = load_catalogue(missing)
    result = CliRunner().invoke(catalogue_group, ["check", str(missing)])

    assert catalogue.environments == {}
    assert [p.field for p in catalogue.problems] == [None]
    assert str(catalogue.problems[0]) == (
        f"{missing}: expected a readable folder of environment .yaml files (check the "
        "catalogue_dir setting): No such file or directory"
    )
    assert result.exit_code == 1


def test_show_command_prints_the_resolved_environment() -> None:
    result = CliRunner().invoke(catalogue_group, ["show", "ccp4"])

    assert result.exit_code == 0, result.output
    assert '"name": "daaas-ccp4"' in result.output



def test_icons_are_found_next_to_a_sites_own_catalogue(tmp_path: Path) -> None:
    folder = write(tmp_path / "environments", {"site": BASE.replace("desktop.svg", "site.svg")})

    before = load_catalogue(folder)
    (tmp_path / "icons").mkdir()
    (tmp_path / "icons" / "site.svg").write_text("<svg/>", encoding="utf-8")
    after = load_catalogue(folder)

    assert [(p.entry, p.field) for p in before.problems] == [("site", "icon")]
    assert "(got 'site.svg')" in before.problems[0].message
    assert after.problems == [] and list(after.abstract) == ["site"]
