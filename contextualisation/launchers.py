"""Application launchers and the freedesktop.org desktop entries that show them.

Escaping follows the Desktop Entry Specification 1.5: string values escape ``\\``, newline, tab
and carriage return; Exec arguments with reserved characters are double-quoted, ``%`` doubled,
and the string escape applied on top.
"""

from __future__ import annotations

import posixpath
import re
import shlex

from pydantic import BaseModel, Field, field_validator

from daaas.contextualisation.validation import FROZEN
from daaas.cvmfs.settings import validate_repository_name

_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_ICON_RE = re.compile(r"^[A-Za-z0-9._/+-]+$")
_CATEGORY_RE = re.compile(r"^[A-Za-z0-9-]+$")
_RESERVED = frozenset(" \t\n\"'\\><~|&;$*?#()`")
DEFAULT_CATEGORY = "Science"
_IMAGE_SUFFIXES = (".svg", ".png", ".xpm")


class Launcher(BaseModel):
    """A desktop icon for one application, whose command lives under /cvmfs/<repository>/.

    Invalid values raise pydantic.ValidationError.
    """

    model_config = FROZEN
    name: str = Field(min_length=1, max_length=200)
    command: str = Field(description="Command line; the program must be under /cvmfs/<repo>/.")
    icon: str = Field(default="", description="Path, file in the icon folder, or theme name.")
    category: str = DEFAULT_CATEGORY
    terminal: bool = False
    description: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("an application needs a name")
        return value.strip()

    @field_validator("command")
    @classmethod
    def _command(cls, value: str) -> str:
        if _CONTROL_RE.search(value):
            raise ValueError("the command must be one line without control characters")
        argv = shlex.split(value)
        program = argv[0] if argv else ""
        parts = program.split("/")
        if posixpath.normpath(program) != program or len(parts) < 4 or parts[1] != "cvmfs":
            raise ValueError(f"the program '{program}' must be a path under /cvmfs/<repository>/")
        validate_repository_name(parts[2])
        return value

    @field_validator("icon")
    @classmethod
    def _icon(cls, value: str) -> str:
        if value and (not _ICON_RE.match(value) or ".." in value.split("/")):
            raise ValueError(f"icon '{value}' must be a path or file name without spaces")
        return value

    @property
    def argv(self) -> list[str]:
        """Return the command split into arguments (program first). Raises nothing."""
        return shlex.split(self.command)

    @property
    def repository(self) -> str:
        """Return the CVMFS repository the program lives in. Raises nothing."""
        return self.argv[0].split("/")[2]


def escape_string(value: str) -> str:
    """Return ``value`` escaped for a desktop-entry string: one line, backslashes doubled.

    Raises nothing.
    """
    escaped = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
    return _CONTROL_RE.sub(" ", escaped.replace("\r", "\\r"))


def exec_value(argv: list[str]) -> str:
    """Return the Exec= value that runs ``argv`` exactly (quoted, ``%`` doubled, escaped).

    Raises nothing.
    """
    return escape_string(" ".join(_quote_argument(arg) for arg in argv))


def _quote_argument(arg: str) -> str:
    if arg and not _RESERVED.intersection(arg):
        return arg.replace("%", "%%")
    inner = re.sub(r'(["`$\\])', r"\\\1", arg).replace("%", "%%")
    return f'"{inner}"'


def categories(value: str) -> str:
    """Return a Categories= value (``A;B;``) from free text; unusable words are dropped.

    Raises nothing.
    """
    words = [word for word in re.split(r"[;,\s]+", value) if _CATEGORY_RE.match(word)]
    return ";".join(dict.fromkeys(words or [DEFAULT_CATEGORY])) + ";"


def icon_value(icon: str, icon_dir: str) -> str:
    """Return the Icon= value: an absolute path as is, an image file name (.svg, .png, .xpm)
    inside ``icon_dir``, anything else as a theme icon name; empty for none. Raises nothing."""
    if icon.startswith("/") or not icon.lower().endswith(_IMAGE_SUFFIXES):
        return icon
    return f"{icon_dir}/{posixpath.basename(icon)}"


def file_names(launchers: tuple[Launcher, ...]) -> list[str]:
    """Return a distinct ``daaas-<slug>.desktop`` file name for each launcher, in order.

    Raises nothing.
    """
    names: dict[str, None] = {}
    for launcher in launchers:
        slug = re.sub(r"[^a-z0-9]+", "-", launcher.name.lower()).strip("-")[:40] or "app"
        name, number = f"daaas-{slug}.desktop", 1
        while name in names:
            number += 1
            name = f"daaas-{slug}-{number}.desktop"
        names[name] = None
    return list(names)
