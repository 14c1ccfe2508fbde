"""What the desktop proxy reads at start and asks per connection: its secrets (from a mode-600
source file) and the one-time desktop tokens (in the portal's database).

:mod:`daaas.portal.access.proxy` writes the source file, a small JSON object with the database
URL and the portal's secret key, and starts :mod:`daaas.portal.access.rfbproxy` with its path,
so neither secret appears in the process list or the environment. The proxy reads it once
(:func:`read_source`) before it listens; the portal removes it as soon as the proxy listens.

websockify handles each connection in a forked child process, so no database connection is
kept across lookups: each :meth:`DatabaseTokens.lookup` opens one, spends the token, and closes
it. When the launcher names itself in ``WEBSOCKIFY_LAUNCHER_PID``, the proxy stops once that
process is gone (:func:`exit_with_launcher`), so a portal killed without cleaning up leaves no
proxy behind.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import stat
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from daaas.portal.access.service import DesktopTarget, consume_token, record_desktop_seen
from daaas.portal.db import make_engine
from daaas.portal.sharing import registry
from daaas.portal.sharing.models import Role

log = logging.getLogger("daaas.tokenplugin")
LAUNCHER_ENV = "WEBSOCKIFY_LAUNCHER_PID"
TOKEN_IN_TEXT = re.compile(r"(token=)[^&'\s]+|(Token ')[^']*(')", re.IGNORECASE)


class SourceFileError(RuntimeError):
    """The source file is missing, unreadable, incomplete or readable by others."""


@dataclass(frozen=True)
class ProxySecrets:
    """What the desktop proxy needs and nobody else may read (left out of repr)."""

    database_url: str = field(repr=False)
    secret_key: str = field(repr=False)

    def to_json(self) -> str:
        """Return the JSON text of the source file. Raises nothing."""
        return json.dumps({"database_url": self.database_url, "secret_key": self.secret_key})


class DatabaseTokens:
    """``lookup(token)`` spends a one-time desktop token once, in the portal's database."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._engine: tuple[int, Engine] | None = None

    def engine(self) -> Engine:
        """Return this process's engine for the connection registry (one per forked
        connection process, made on first use). Raises nothing."""
        if self._engine is None or self._engine[0] != os.getpid():
            self._engine = (os.getpid(), make_engine(self.database_url))
        return self._engine[1]

    def grant(self, token: str) -> registry.Grant | None:
        """Return the role, user and link of a spent token, None when it cannot be read.
        Raises nothing: a failure is logged and refuses the connection."""
        try:
            return registry.token_grant(self.engine(), token)
        except Exception as error:  # refuse rather than guess a role
            log.error("desktop token's role not read: %s", type(error).__name__)
            return None

    def open(self, machine_id: str, grant: registry.Grant) -> int | None:
        """Record the connection in the registry; returns its id, None when that failed
        (logged; the caller refuses the connection). Raises nothing."""
        try:
            return registry.open_connection(self.engine(), machine_id, grant)
        except Exception as error:  # an unregistered connection could not be revoked
            log.error("machine %s: desktop connection not recorded: %s", machine_id,
                      type(error).__name__)
            return None

    def check(self, connection_id: int, *, touch: bool) -> tuple[Role, str] | None:
        """Return the connection's role and why it was ended ("" if not); None when the
        database cannot be read now (the connection keeps its role). Raises nothing."""
        try:
            return registry.check(self.engine(), connection_id, touch=touch)
        except Exception as error:  # a missed check is retried at the next one
            log.warning("desktop connection %s not checked: %s", connection_id,
                        type(error).__name__)
            return None

    def close(self, connection_id: int) -> None:
        """Record that the connection closed (and apply the owner-away policy). Raises
        nothing: a failure is logged."""
        try:
            registry.close_connection(self.engine(), connection_id)
        except Exception as error:  # the row then ages out of the connected list
            log.warning("desktop connection %s: close not recorded: %s", connection_id,
                        type(error).__name__)

    def lookup(self, token: str) -> DesktopTarget | None:
        """Return the machine and VNC server the token opens, or None (unknown, used, expired,
        not ready).

        Raises nothing: database errors are logged (without the token) and refuse the
        connection.
        """
        engine = make_engine(self.database_url)
        try:
            return consume_token(engine, token)
        except Exception as error:  # any failure refuses the connection; the proxy goes on
            log.error("desktop token check failed: %s: %s", type(error).__name__,
                      str(error).splitlines()[0] if str(error) else "")
            return None
        finally:
            engine.dispose()

    def seen(self, machine_id: str) -> None:
        """Record that a desktop connection to ``machine_id`` is open now (the idle stop
        reads it). Raises nothing: a failure is logged, the connection goes on."""
        engine = make_engine(self.database_url)
        try:
            record_desktop_seen(engine, machine_id)
        except Exception as error:  # a missed mark costs at most one minute of idle time
            log.warning("machine %s: desktop activity not recorded: %s", machine_id,
                        type(error).__name__)
        finally:
            engine.dispose()


def read_source(path: Path) -> ProxySecrets:
    """Return the database URL and secret key stored in ``path`` (JSON).

    Raises SourceFileError if the file is missing, readable by group or others, not a JSON
    object with both values, or empty.
    """
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SourceFileError(f"cannot read the proxy's source file {path}: "
                              f"{error.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SourceFileError(f"the proxy's source file {path} must be readable by its owner "
                              "only (chmod 600): it holds the database URL and the secret key")
    try:
        values = json.loads(text)
    except ValueError:
        values = None
    if not isinstance(values, dict) or not all(
            isinstance(values.get(key), str) and values[key]
            for key in ("database_url", "secret_key")):
        raise SourceFileError(f"the proxy's source file {path} must be a JSON object with "
                              "database_url and secret_key")
    return ProxySecrets(database_url=values["database_url"], secret_key=values["secret_key"])


class _RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = TOKEN_IN_TEXT.sub(_hide, record.getMessage())
        record.args = None
        return True


def _hide(match: re.Match[str]) -> str:
    if match.group(1):
        return f"{match.group(1)}***"
    return f"{match.group(2)}***{match.group(3)}"


def redact_websockify_logs() -> None:
    """Hide tokens in websockify's own log lines (request paths, "Token '…' not found").

    websockify logs through handlers on the root logger; a filter on each hides tokens.
    Returns None; raises nothing.
    """
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _RedactTokens) for f in handler.filters):
            handler.addFilter(_RedactTokens())


def exit_with_launcher(launcher_pid: int, interval: float = 1.0) -> None:
    """Send this process SIGTERM once it is no longer the child of ``launcher_pid``.

    A daemon thread in websockify's main process watches the parent pid; websockify answers
    SIGTERM by ending its connection handlers and exiting. Returns None; raises nothing.
    """
    def watch() -> None:
        while os.getppid() == launcher_pid:
            time.sleep(interval)
        log.warning("the portal that started this desktop proxy has gone; stopping")
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="launcher-watch", daemon=True).start()
