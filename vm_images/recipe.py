"""An environment's image recipe: its diskimage-builder elements and their packages.

The elements under ``vm_images/elements/`` are the ONE source of truth. Each catalogue
environment ``E`` has the element ``daaas-E``, whose ``element-deps`` names the element of the
environment it ``extends:`` (mirrored, and checked here). Packages are the union of the
elements' ``package-installs.yaml`` files, evaluated the way diskimage-builder's
package-installs element does (``when: VAR = value`` / ``VAR != value``, ``arch``/``not-arch``,
``uninstall`` and ``build-only`` left out), so the mmdebstrap path installs the same packages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from daaas import package_path
from daaas.catalogue.collection import Catalogue

ELEMENTS_DIR = package_path("daaas.vm_images", "elements")
PREFIX = "daaas-"
#: Hook phases run inside the image, in diskimage-builder's order.
IN_IMAGE_PHASES = ("pre-install.d", "install.d", "post-install.d")
_WHEN = re.compile(r"^\s*(?P<var>\w+)\s*(?P<op>!=|=)\s*(?P<value>.*?)\s*$")
_DEFAULT = re.compile(r"^\s*export\s+(?P<var>\w+)=\$\{(?P=var):-(?P<value>.*)\}\s*$")


class RecipeError(Exception):
    """An element or an environment's recipe is broken; the message names the file."""


@dataclass(frozen=True)
class Element:
    """One element folder: its dependencies (ours and diskimage-builder's) and package rules."""

    name: str
    path: Path
    deps: tuple[str, ...]
    packages: dict[str, dict[str, Any]]

    def hooks(self, phase: str) -> list[Path]:
        """Return the element's executable scripts of ``phase`` (e.g. install.d), by name."""
        folder = self.path / phase
        return sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []

    def defaults(self) -> dict[str, str]:
        """Return ``export VAR=${VAR:-value}`` defaults of the element's environment.d files."""
        found: dict[str, str] = {}
        for script in self.hooks("environment.d"):
            for line in script.read_text(encoding="utf-8").splitlines():
                if match := _DEFAULT.match(line):
                    found[match["var"]] = match["value"].strip('"')
        return found


def load_elements(directory: Path = ELEMENTS_DIR) -> dict[str, Element]:
    """Return every element in ``directory`` by name. Raises RecipeError for a bad file."""
    if not directory.is_dir():
        raise RecipeError(f"{directory} is not a folder of diskimage-builder elements")
    return {path.name: _load_element(path) for path in sorted(directory.iterdir())
            if path.is_dir()}


def _load_element(path: Path) -> Element:
    deps_file, packages_file = path / "element-deps", path / "package-installs.yaml"
    deps = tuple(line.strip() for line in _read(deps_file).splitlines()
                 if line.strip() and not line.startswith("#"))
    try:
        packages = yaml.safe_load(_read(packages_file)) or {}
    except yaml.YAMLError as exc:
        raise RecipeError(f"{packages_file}: not valid YAML: {exc}") from None
    if not isinstance(packages, dict):
        raise RecipeError(f"{packages_file}: expected a mapping of package names")
    rules = {str(name): dict(rule or {}) for name, rule in packages.items()}
    return Element(path.name, path, deps, rules)


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8") if path.exists() else ""


def element_name(environment: str) -> str:
    """Return the element of a catalogue environment: ``daaas-<name>``."""
    return f"{PREFIX}{environment}"


def element_chain(root: str, elements: Mapping[str, Element]) -> list[Element]:
    """Return ``root`` and every element of ours it depends on, dependencies first.

    Raises RecipeError for an unknown element or a dependency cycle.
    """
    ordered: list[Element] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if any(e.name == name for e in ordered):
            return
        if name in visiting:
            raise RecipeError(f"element dependency cycle: {' -> '.join([*visiting, name])}")
        if name not in elements:
            raise RecipeError(f"no element {name!r} in {ELEMENTS_DIR}")
        visiting.append(name)
        for dep in elements[name].deps:
            if dep.startswith(PREFIX):
                visit(dep)
        visiting.pop()
        ordered.append(elements[name])

    visit(root)
    return ordered


def external_elements(chain: list[Element]) -> list[str]:
    """Return the diskimage-builder elements (not ours) the chain names, in first-seen order."""
    seen: dict[str, None] = {}
    for element in chain:
        seen.update((dep, None) for dep in element.deps if not dep.startswith(PREFIX))
    return list(seen)


def environment_chain(catalogue: Catalogue, environment: str,
                      elements: Mapping[str, Element]) -> list[Element]:
    """Return the element chain of a catalogue environment (launchable or abstract).

    Checks that the environment's element depends on the element of its ``extends:`` parent.
    Raises RecipeError for an unknown environment, a missing element or a broken mirror.
    """
    env = catalogue.environments.get(environment) or catalogue.abstract.get(environment)
    if env is None:
        problems = "; ".join(str(p) for p in catalogue.invalid.get(environment, []))
        raise RecipeError(f"no valid environment {environment!r} in {catalogue.directory}"
                          + (f": {problems}" if problems else ""))
    name = element_name(environment)
    if name not in elements:
        raise RecipeError(f"the environment {environment!r} has no image element: create "
                          f"{ELEMENTS_DIR / name} (element-deps, package-installs.yaml)")
    if env.extends and element_name(env.extends) not in elements[name].deps:
        raise RecipeError(f"{ELEMENTS_DIR / name / 'element-deps'} must name "
                          f"{element_name(env.extends)}: the environment extends {env.extends}")
    return element_chain(name, elements)


def environment_defaults(chain: list[Element]) -> dict[str, str]:
    """Return the chain's environment.d defaults (later elements win, as DIB sources them)."""
    values: dict[str, str] = {}
    for element in chain:
        values.update(element.defaults())
    return values


def packages(chain: list[Element], environ: Mapping[str, str] | None = None,
             arch: str = "amd64") -> list[str]:
    """Return the union of the chain's packages to install, in element order, no duplicates.

    ``environ`` (default: the chain's environment.d defaults only) decides ``when:`` rules.
    Raises RecipeError for a ``when:`` that cannot be read or names an unset variable.
    """
    env = {**environment_defaults(chain), **(environ or {})}
    chosen: dict[str, None] = {}
    for element in chain:
        for name, rule in element.packages.items():
            if _wanted(element, name, rule, env, arch):
                chosen[name] = None
    return list(chosen)


def _wanted(element: Element, name: str, rule: dict[str, Any], env: Mapping[str, str],
            arch: str) -> bool:
    if rule.get("uninstall") or rule.get("build-only"):
        return False
    if "arch" in rule and arch not in _words(rule["arch"]):
        return False
    if "not-arch" in rule and arch in _words(rule["not-arch"]):
        return False
    whens = rule.get("when", [])
    return all(_holds(element, name, when, env)
               for when in ([whens] if isinstance(whens, str) else whens))


def _words(value: Any) -> set[str]:
    return {word.strip() for word in str(value).split(",")}


def _holds(element: Element, name: str, when: str, env: Mapping[str, str]) -> bool:
    match = _WHEN.match(when)
    where = f"{element.path / 'package-installs.yaml'}: {name}"
    if match is None:
        raise RecipeError(f"{where}: cannot read 'when: {when}' (expected VAR = value)")
    if match["var"] not in env:
        raise RecipeError(f"{where}: 'when' names {match['var']}, which is not set")
    equal = env[match["var"]] == match["value"]
    return equal if match["op"] == "=" else not equal
