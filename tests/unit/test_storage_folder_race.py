"""Two processes making a user's storage folder on first need at the same moment (the web
process for the Analysis page's quota panel, the worker for the launch) both succeed: the
e2e tests once saw a launch fail with "[Errno 17] File exists" on a fresh portal."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from daaas.portal.storage.backends import ensure_folder

MAKERS = 8


def test_concurrent_first_creations_of_one_folder_all_succeed(tmp_path: Path) -> None:
    user: Any = SimpleNamespace(uid=65534, gid=65534)
    with ThreadPoolExecutor(MAKERS) as pool:
        for attempt in range(40):
            folder = tmp_path / f"storage-{attempt}" / "scientist"
            start = threading.Barrier(MAKERS)

            def make(folder: Path = folder, start: threading.Barrier = start) -> None:
                start.wait()
                ensure_folder(folder, user)

            for made in [pool.submit(make) for _ in range(MAKERS)]:
                made.result()  # raises what ensure_folder raised
            assert folder.is_dir() and folder.stat().st_mode & 0o777 == 0o700
