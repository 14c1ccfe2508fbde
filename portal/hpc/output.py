"""Reading a job's output from the user's storage, as seen by the portal.

The portal shows a file only if it is a regular file (not a symbolic link) owned by the user's
uid: a job can only create such a file in the user's name, so nobody can point the portal at
someone else's data. The last ``MAX_BYTES`` are shown.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

MAX_BYTES = 256 * 1024


@dataclass(frozen=True)
class JobOutput:
    """A job's output file: its text, or why it cannot be shown."""

    path: str
    text: str = ""
    truncated: bool = False
    problem: str = ""

    @property
    def available(self) -> bool:
        """Return True when the text could be read. Raises nothing."""
        return not self.problem


def read_output(path: str, uid: int) -> JobOutput:
    """Return the end of the output file at ``path`` if it belongs to ``uid``.

    Raises nothing: a missing, unreadable or foreign file gives a JobOutput whose ``problem``
    says what is wrong and what to do.
    """
    if not path.startswith("/") or "%" in path:
        return JobOutput(path, problem=f"The output goes to '{path}', which the portal cannot "
                                       "locate. Look for it on the cluster.")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        return JobOutput(path, problem=_why(path, exc))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != uid:
            return JobOutput(path, problem=f"{path} is not a file written by your jobs, so the "
                                           "portal does not show it.")
        handle.seek(max(0, info.st_size - MAX_BYTES))
        data = handle.read(MAX_BYTES)
    return JobOutput(path, data.decode("utf-8", errors="replace"), info.st_size > MAX_BYTES)


def _why(path: str, exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return (f"There is no output at {path} yet: a job writes it once it starts. If the job "
                "has ended, its working folder may not exist or not be shared with the portal.")
    if exc.errno == errno.ELOOP:
        return f"{path} is a symbolic link; the portal shows only files your jobs wrote."
    return (f"The portal cannot read {path} ({exc.strerror}). Open it from your machine's "
            "storage instead, or ask the facility's support to share that folder with the "
            "portal.")
