"""Loading a catalogue folder: every file checked, inheritance resolved, every problem kept.

An entry is named by its file: ``ccp4.yaml`` is ``ccp4``. A ``name:`` in the file is optional
and, when given, must be that same name (so a file cannot silently shadow another entry).
Only ``*.yaml`` files are read; hidden files are ignored and a ``*.yml`` file is reported.

Each file is first checked on its own for types and unknown fields, leaving out missing fields
(they may be inherited), so a wrong value is reported against the file that holds it. Then
:mod:`daaas.catalogue.resolver` merges it onto its parent and checks the result. A broken entry
never
stops the others from loading.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from daaas import package_path
from daaas.catalogue.collection import Catalogue
from daaas.catalogue.files import UnreadableFile, read_entry
from daaas.catalogue.merge import may_inherit
from daaas.catalogue.model import DEFER_CHECKS, EnvironmentFile
from daaas.catalogue.problems import from_validation_error
from daaas.catalogue.report import Report
from daaas.catalogue.resolver import Resolver

PACKAGE_DIRECTORY = package_path("daaas.catalogue")
DEFAULT_DIRECTORY = PACKAGE_DIRECTORY / "environments"
ICONS_DIRECTORY = PACKAGE_DIRECTORY / "icons"


def load_catalogue(directory: Path, icons: Sequence[Path] | None = None,
                   repositories: Collection[str] | None = None) -> Catalogue:
    """Return the catalogue in ``directory``; never raises for bad or missing files.

    Every problem, a missing folder included, is in the result's ``problems``. An entry's
    ``icon`` must be in one of the ``icons`` folders (default: :func:`icon_folders`), and its
    CVMFS repositories among ``repositories`` when given (the site's CVMFS registry, see
    :mod:`daaas.cvmfs.registry`; None accepts any repository).
    """
    directory = Path(directory)
    report = Report(directory)
    entries = read_folder(directory, report)
    folders = icon_folders(directory) if icons is None else [Path(f) for f in icons]
    valid = Resolver(entries, report, folders, repositories).resolve_all()
    return Catalogue.build(directory, valid, report.invalid(), report.problems())


def icon_folders(directory: Path) -> list[Path]:
    """Return where icons are looked up: ``<dir>/icons``, ``<dir>/../icons``, shipped icons."""
    return [directory / "icons", directory.parent / "icons", ICONS_DIRECTORY]


def read_folder(directory: Path, report: Report) -> dict[str, dict[str, Any] | None]:
    """Return each entry's checked mapping (None if unreadable), recording problems in report."""
    try:
        paths = sorted(directory.iterdir())
    except OSError as error:
        report.add(None, None, "expected a readable folder of environment .yaml files "
                   f"(check the catalogue_dir setting): {error.strerror or error}")  # fmt: skip
        return {}
    entries: dict[str, dict[str, Any] | None] = {}
    for path in paths:
        if path.suffix == ".yml" and not path.name.startswith("."):
            report.add_stray(path, f"not loaded: expected a .yaml file; rename it {path.stem}.yaml")
        elif path.suffix == ".yaml" and not path.name.startswith("."):
            entry = report.add_file(path)  # registered before reading: problems need its path
            entries[entry] = _read(path, report)
    return entries


def _read(path: Path, report: Report) -> dict[str, Any] | None:
    entry = path.stem
    try:
        data = read_entry(path)
    except UnreadableFile as error:
        report.add(entry, None, error.message, line=error.line)
        return None
    if data.get("name", entry) != entry:
        report.add(entry, "name", f"expected {entry!r}, the file's name: an entry is named by its "
                   f"file, so rename the file or fix the name (got {data['name']!r})")  # fmt: skip
    data = {**data, "name": entry}
    try:
        EnvironmentFile.model_validate(data, context=DEFER_CHECKS)
    except ValidationError as error:
        issues = from_validation_error(error, data, EnvironmentFile, keep=_not_inheritable)
        report.add_issues(entry, issues)
    report.file_checked(entry)
    return data


def _not_inheritable(error: ErrorDetails) -> bool:
    return not (error["type"] == "missing" and may_inherit(error["loc"]))
