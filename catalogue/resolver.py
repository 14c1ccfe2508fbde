"""Resolving inheritance: cycles found, each entry merged onto its parent and checked whole.

The merged result is checked for completeness (required fields may come from the parent) and
consistency (:mod:`daaas.catalogue.checks`); its problems are reported against the child's file. A
child of an invalid parent (or of a member of a cycle) is invalid too.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from daaas.catalogue.checks import Issue
from daaas.catalogue.merge import merge
from daaas.catalogue.model import DEFER_CHECKS, Environment
from daaas.catalogue.problems import from_validation_error
from daaas.catalogue.report import Report

Raw = dict[str, Any]


class Resolver:
    """Resolves the entries read from one folder into valid environments."""

    def __init__(self, entries: dict[str, Raw | None], report: Report, icons: list[Path],
                 repositories: Collection[str] | None = None) -> None:
        """Take the entries (None if unreadable), the report, the icon folders in order, and
        the CVMFS repositories the site offers (None: any repository is accepted)."""
        self.entries, self.report, self.icons = entries, report, icons
        self.repositories = None if repositories is None else frozenset(repositories)
        self.resolved: dict[str, Raw | None] = {}
        self.valid: list[Environment] = []

    def resolve_all(self) -> list[Environment]:
        """Return the valid environments (abstract ones included), recording all problems."""
        self._find_cycles()
        for entry in self.entries:
            self._resolve(entry)
        return self.valid

    def _parent(self, entry: str) -> str | None:
        parent = (self.entries.get(entry) or {}).get("extends")
        return parent if isinstance(parent, str) else None

    def _find_cycles(self) -> None:
        for entry in self.entries:
            chain, current = [entry], self._parent(entry)
            while current in self.entries and current not in chain:
                chain.append(current)
                current = self._parent(current)
            if current == entry:
                cycle = " -> ".join([*chain, entry])
                self.report.add(entry, "extends", f"expected no inheritance cycle, found "
                                f"{cycle}; remove 'extends' from one of these entries")  # fmt: skip

    def _resolve(self, entry: str) -> Raw | None:
        if entry not in self.resolved:
            self.resolved[entry] = None  # also stops the recursion in a cycle
            self.resolved[entry] = self._resolve_entry(entry)
        return self.resolved[entry]

    def _resolve_entry(self, entry: str) -> Raw | None:
        data = self.entries[entry]
        if data is None or self.report.has_problem(entry, "extends"):
            return None  # unreadable, a bad 'extends' (already reported) or part of a cycle
        base = self._base(entry, data.get("extends"))
        if base is None:
            return None
        merged, issues = merge(base, data)
        self.report.add_issues(entry, issues)
        environment = self._validate(entry, merged)
        if environment is None or self.report.has_problem(entry):
            return None
        self.valid.append(environment)
        return merged

    def _base(self, entry: str, parent: str | None) -> Raw | None:
        if parent is None:
            return {}
        if parent not in self.entries:
            close = difflib.get_close_matches(parent, list(self.entries), n=3)
            hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
            self.report.add(entry, "extends", f"expected the name of another entry, but there "
                            f"is no {parent}.yaml (got {parent!r}){hint}")  # fmt: skip
            return None
        base = self._resolve(parent)
        if base is None:
            self.report.add(entry, "extends", f"parent {parent!r} is invalid; fix it first")
        return base

    def _validate(self, entry: str, merged: Raw) -> Environment | None:
        try:
            environment = Environment.model_validate(merged, context=DEFER_CHECKS)
        except ValidationError as error:
            self.report.add_issues(entry, from_validation_error(error, merged, Environment))
            return None
        issues = (environment.consistency_issues() + self._icon_issues(environment)
                  + self._repository_issues(environment))
        self.report.add_issues(entry, issues)
        return environment

    def _repository_issues(self, environment: Environment) -> list[Issue]:
        if self.repositories is None:
            return []
        known = ", ".join(sorted(self.repositories)) or "none"
        return [(f"cvmfs_repositories[{name}]", f"expected a repository of the site's CVMFS "
                 f"registry ({known}); add it to the registry or remove it (got {name!r})")
                for name in environment.cvmfs_repositories if name not in self.repositories]

    def _icon_issues(self, environment: Environment) -> list[Issue]:
        if any((folder / environment.icon).is_file() for folder in self.icons):
            return []
        known = sorted({p.name for folder in self.icons for p in folder.glob("*.svg")})
        folders = ", ".join(str(folder) for folder in self.icons if folder.is_dir())
        return [("icon", f"expected an SVG file in {folders or 'an icons folder'} (there: "
                 f"{', '.join(known) or 'none'}); add it or use one of those "
                 f"(got {environment.icon!r})")]  # fmt: skip
