"""Collecting the problems of one catalogue load, entry by entry, without repeating any."""

from __future__ import annotations

from pathlib import Path

from daaas.catalogue.checks import Issue
from daaas.catalogue.problems import CatalogueProblem


class Report:
    """The problems found so far, by entry (``None`` for the folder and stray files)."""

    def __init__(self, directory: Path) -> None:
        """Start an empty report for the catalogue folder ``directory``."""
        self.directory = directory
        self.paths: dict[str, Path] = {}
        self.by_entry: dict[str | None, list[CatalogueProblem]] = {None: []}
        self._file_fields: dict[str, set[str]] = {}

    def add_file(self, path: Path) -> str:
        """Register an entry's file and return the entry's name (the file name without .yaml)."""
        self.paths[path.stem] = path
        self.by_entry[path.stem] = []
        return path.stem

    def add(
        self, entry: str | None, field: str | None, message: str, line: int | None = None
    ) -> None:
        """Record a problem of ``entry`` (or of the folder) about ``field``."""
        path = self.paths[entry] if entry else self.directory
        self.by_entry[entry].append(CatalogueProblem(path, entry, field, message, line))

    def add_stray(self, path: Path, message: str) -> None:
        """Record a problem with a file that is not an entry (such as ``x.yml``)."""
        self.by_entry[None].append(CatalogueProblem(path, None, None, message))

    def file_checked(self, entry: str) -> None:
        """Remember the fields reported for ``entry`` so far: the file's own problems."""
        self._file_fields[entry] = {p.field for p in self.by_entry[entry] if p.field}

    def add_issues(self, entry: str, issues: list[Issue]) -> None:
        """Record ``issues`` of ``entry``, except those its file's own problems already cover.

        Covered: the same field, and, once the file has problems, any list item (an item
        without a name is labelled by its position, which differs after merging).
        """
        file_fields = self._file_fields.get(entry, set())
        for field, message in issues:
            if field not in file_fields and not (file_fields and "[" in field):
                self.add(entry, field, message)

    def has_problem(self, entry: str, field: str | None = None) -> bool:
        """Return True if ``entry`` has a problem (about ``field``, when given)."""
        return any(field is None or p.field == field for p in self.by_entry[entry])

    def invalid(self) -> dict[str, list[CatalogueProblem]]:
        """Return the entries with problems, each with its problems."""
        return {entry: ps for entry, ps in self.by_entry.items() if entry is not None and ps}

    def problems(self) -> list[CatalogueProblem]:
        """Return every problem: the folder's first, then each entry's in file order."""
        return [problem for problems in self.by_entry.values() for problem in problems]
