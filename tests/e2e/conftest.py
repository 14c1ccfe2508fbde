"""The e2e fixtures: one real `daaas serve` per test module (the browser: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.serve import served_portal


@pytest.fixture(scope="module")
def portal_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`daaas serve` with its reconciler thread and websockify, on free ports."""
    with served_portal(tmp_path_factory) as url:
        yield url
