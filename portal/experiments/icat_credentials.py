"""The portal's ICAT reader account, read from a file only the portal's account can read.

The file (named by the ``icat_credentials_file`` setting) is TOML, or JSON when its name ends
in ``.json``::

    plugin = "ldap"          # ICAT authenticator mnemonic
    username = "daaas-reader"
    password = "…"

It must not be readable or writable by group or others (``chmod 600``); the portal refuses to
start otherwise, so the password never sits in the portal's own configuration.
"""

from __future__ import annotations

import json
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from daaas.portal.config import ConfigError

KEY = "icat_credentials_file"


@dataclass(frozen=True)
class IcatCredentials:
    """An ICAT authenticator plugin and the credentials it takes."""

    plugin: str
    username: str
    password: str = field(repr=False)

    def login_json(self) -> str:
        """Return the ``json`` form field of ICAT's ``POST /icat/session``."""
        return json.dumps({"plugin": self.plugin, "credentials": [
            {"username": self.username}, {"password": self.password}]})


def read_credentials(path_text: str) -> IcatCredentials:
    """Return the credentials in the file; raises ConfigError naming the setting and the file
    when it is missing, readable by others, malformed or lacks plugin/username/password."""
    if not path_text:
        raise ConfigError(f"Configuration key '{KEY}' must name the ICAT reader account's "
                          "credentials file when experiments_backend is 'icat'.")
    path = Path(path_text)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"Configuration key '{KEY}': cannot read {path}: "
                          f"{exc.strerror}.") from None
    if mode & 0o077:
        raise ConfigError(f"Configuration key '{KEY}': {path} has mode {mode:o}; it holds a "
                          f"password, so make it readable by the portal's account only "
                          f"(chmod 600 {path}).")
    return _parse(path, text)


def _parse(path: Path, text: str) -> IcatCredentials:
    try:
        values = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"Configuration key '{KEY}': {path} is not valid "
                          f"{'JSON' if path.suffix == '.json' else 'TOML'}: {exc}.") from None
    values = values if isinstance(values, dict) else {}
    wanted = ("plugin", "username", "password")
    missing = [k for k in wanted if not isinstance(values.get(k), str) or not values[k]]
    if missing:
        raise ConfigError(f"Configuration key '{KEY}': {path} must set {', '.join(wanted)} "
                          f"as strings (missing or empty: {', '.join(missing)}).")
    return IcatCredentials(values["plugin"], values["username"], values["password"])
