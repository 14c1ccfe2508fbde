"""The websockify token plugin: one-time desktop tokens looked up in the portal's database.

websockify loads it by dotted path::

    python -m websockify --token-plugin daaas.portal.access.tokenplugin.DatabaseTokens \\
        --token-source /path/to/file 127.0.0.1:6080

and calls ``DatabaseTokens(src).lookup(token)`` for every new connection. ``src`` is the path
of a mode-600 file holding the database URL (written by :mod:`daaas.portal.access.proxy`), so the
URL
and its password never appear in the process list.

websockify handles each connection in a forked child process, so no database connection is
kept across lookups: each lookup opens one, spends the token, and closes it. When the launcher
names itself in ``WEBSOCKIFY_LAUNCHER_PID``, websockify stops once that process is gone, so a
portal killed without cleaning up leaves no proxy behind.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import stat
import threading
import time
from pathlib import Path

from daaas.portal.access.service import consume_token
from daaas.portal.db import make_engine

log = logging.getLogger("daaas.tokenplugin")
LAUNCHER_ENV = "WEBSOCKIFY_LAUNCHER_PID"
TOKEN_IN_TEXT = re.compile(r"(token=)[^&'\s]+|(Token ')[^']*(')", re.IGNORECASE)


class SourceFileError(RuntimeError):
    """The token source file is missing, unreadable, empty or readable by others."""


class DatabaseTokens:
    """websockify token plugin: ``lookup(token)`` spends a one-time token once.

    Built with the token source path; raises SourceFileError when that file is unusable, which
    stops websockify at start with the reason.
    """

    def __init__(self, src: str) -> None:
        self.source = src
        self.database_url = read_source(Path(src))
        redact_websockify_logs()
        launcher = os.environ.get(LAUNCHER_ENV, "")
        if launcher.isdigit():
            exit_with_launcher(int(launcher))

    def lookup(self, token: str) -> tuple[str, int] | None:
        """Return the (host, port) the token opens, or None (unknown, used, expired, not ready).

        Raises nothing: database errors are logged (without the token) and refuse the
        connection.
        """
        engine = make_engine(self.database_url)
        try:
            return consume_token(engine, token)
        except Exception as error:  # any failure refuses the connection; websockify goes on
            log.error("desktop token check failed: %s: %s", type(error).__name__,
                      str(error).splitlines()[0] if str(error) else "")
            return None
        finally:
            engine.dispose()


def read_source(path: Path) -> str:
    """Return the database URL stored in ``path``.

    Raises SourceFileError if the file is missing, empty, or readable by group or others.
    """
    try:
        mode = path.stat().st_mode
        url = path.read_text(encoding="utf-8").strip()
    except OSError as error:
        raise SourceFileError(f"cannot read the token source {path}: {error.strerror}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise SourceFileError(f"the token source {path} must be readable by its owner only "
                              "(chmod 600): it holds the database URL")
    if not url:
        raise SourceFileError(f"the token source {path} is empty; it must hold the database URL")
    return url


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
