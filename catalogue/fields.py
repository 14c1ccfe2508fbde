"""Field types of a catalogue entry: each check says what it expected, for the error report.

The types are strict (YAML already gives real numbers and booleans, so ``"12"`` is not a
whole number and ``5`` is not text). Validators raise :class:`ValueError` with a message that
starts with "expected ...", which :mod:`daaas.catalogue.problems` shows as is, followed by the value
that was found.
"""

from __future__ import annotations

import posixpath
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, Strict, StringConstraints

SLUG_RE = re.compile(r"^[a-z][a-z0-9-]{1,62}$")
REPOSITORY_RE = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
ICON_FILE_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*\.svg$")
ICON_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

GpuPolicy = Literal["none", "optional", "required"]
Protocol = Literal["novnc", "rdp", "ssh"]
# The freedesktop.org main categories (Desktop Menu Specification, appendix A).
Category = Literal[
    "AudioVideo", "Audio", "Video", "Development", "Education", "Game", "Graphics",
    "Network", "Office", "Science", "Settings", "System", "Utility",
]  # fmt: skip


def _slug(value: str) -> str:
    if not SLUG_RE.fullmatch(value):
        raise ValueError(
            "expected a name of 2-63 characters: a lowercase letter, then lowercase letters, "
            "digits or '-'"
        )
    return value


def _repository(value: str) -> str:
    if not REPOSITORY_RE.fullmatch(value):
        raise ValueError("expected a CVMFS repository name in lowercase, like 'sft.cern.ch'")
    return value


def is_cvmfs_path(value: str) -> bool:
    """Return True if ``value`` is a clean absolute path below ``/cvmfs/<repository>/``."""
    clean = posixpath.normpath(value) == value and not any(c.isspace() for c in value)
    return clean and value.startswith("/cvmfs/") and value.count("/") >= 3


def _cvmfs_path(value: str) -> str:
    if not is_cvmfs_path(value):
        raise ValueError(
            "expected an absolute path under /cvmfs/<repository>/, without spaces, '..' or a "
            "trailing '/'"
        )
    return value


def _icon_file(value: str) -> str:
    if not ICON_FILE_RE.fullmatch(value):
        raise ValueError(
            "expected the file name of an SVG icon in catalogue/icons/, like 'ccp4.svg'"
        )
    return value


def _app_icon(value: str) -> str:
    if not (ICON_NAME_RE.fullmatch(value) or is_cvmfs_path(value)):
        raise ValueError(
            "expected a desktop icon name like 'utilities-terminal' or an icon file under "
            "/cvmfs/<repository>/"
        )
    return value


Text = Annotated[str, Strict(), StringConstraints(min_length=1)]
AnyText = Annotated[str, Strict()]
Name = Annotated[str, Strict(), AfterValidator(_slug)]
Repository = Annotated[str, Strict(), AfterValidator(_repository)]
CvmfsPath = Annotated[str, Strict(), AfterValidator(_cvmfs_path)]
IconFile = Annotated[str, Strict(), AfterValidator(_icon_file)]
AppIcon = Annotated[str, Strict(), AfterValidator(_app_icon)]
Flag = Annotated[bool, Strict()]
PositiveInt = Annotated[int, Strict(), Field(gt=0)]


def duplicates(values: list[str]) -> list[str]:
    """Return the values that occur more than once, each once, in order of first repeat."""
    seen: set[str] = set()
    repeated: list[str] = []
    for value in values:
        if value in seen and value not in repeated:
            repeated.append(value)
        seen.add(value)
    return repeated
