"""Checks shared by the context models: narrow patterns for everything that reaches a file."""

from __future__ import annotations

import posixpath
import re
from urllib.parse import urlsplit

from pydantic import ConfigDict, ValidationError

FROZEN = ConfigDict(frozen=True, extra="forbid")
POSIX_NAME_RE = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
IDENTIFIER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
HOST_RE = re.compile(r"^[A-Za-z0-9.-]+(:[0-9]{1,5})?$")
CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")
_PATH_RE = re.compile(r"^/[A-Za-z0-9._/@+-]*$")
_SYSTEM_TREES = ("/bin", "/boot", "/cvmfs", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/opt",
                 "/proc", "/run", "/sbin", "/sys", "/usr", "/var")
_SYSTEM_FOLDERS = frozenset(("/", "/home", "/mnt", "/media", "/root", "/srv", "/tmp"))


def check_path(value: str, what: str) -> str:
    """Return ``value`` if it is a normalised absolute path of safe characters.

    Raises ValueError naming ``what`` otherwise.
    """
    if not _PATH_RE.match(value) or posixpath.normpath(value) != value:
        raise ValueError(f"{what} '{value}' must be a normalised absolute path without spaces")
    return value


def check_user_path(value: str, what: str) -> str:
    """Return ``value`` if it is a safe path (see check_path) outside the system's folders.

    Raises ValueError for ``/``, ``/home`` itself, anything under ``/etc``, ``/usr``, ``/cvmfs``
    and the like.
    """
    check_path(value, what)
    if value in _SYSTEM_FOLDERS or any(
            value == tree or value.startswith(tree + "/") for tree in _SYSTEM_TREES):
        raise ValueError(f"{what} '{value}' would hide or change a system folder")
    return value


def check_identifier(value: str, what: str) -> str:
    """Return ``value`` if it is 1-64 letters, digits, '.', '_' or '-'; raise ValueError if not."""
    if not IDENTIFIER_RE.match(value):
        raise ValueError(f"{what} '{value}' must be letters, digits, '.', '_' or '-' (max. 64)")
    return value


def check_url(value: str, what: str) -> str:
    """Return an http(s) URL without its trailing slash.

    Raises ValueError for another scheme, credentials, a query, a fragment or odd characters.
    """
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
            or parts.fragment or not HOST_RE.match(parts.netloc) or CONTROL_RE.search(value):
        raise ValueError(f"{what} '{value}' must be an http(s) URL without query or spaces")
    if parts.path:
        check_path(parts.path.rstrip("/") or "/", what)
    return value.rstrip("/")


def describe(exc: ValidationError) -> str:
    """Return pydantic's first error as one readable phrase: ``field: problem``. Raises nothing."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{field}: {message}" if field else message
