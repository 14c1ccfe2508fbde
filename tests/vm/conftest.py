"""Real-VM tier: the light desktop image is built once per session, and these tests run last.

The image is built with mmdebstrap from the elements' package lists into a temporary folder
(nothing cached), so a fresh machine tests exactly what an operator's build would install.
Skipped locally (with the reason) when QEMU, mmdebstrap or the cloud kernel are missing; in CI
they must be there. Outside CI, ``DAAAS_VM_TEST_IMAGE`` names an image built before (e.g. by
``benchmarks/vm_boot.py``) to reuse while developing the tier.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.vm import harness

HERE = Path(__file__).resolve().parent
VM_TEST_TIMEOUT_SECONDS = 2700


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test under tests/vm as ``vm`` (with a time limit that covers building the
    image and booting under software emulation) and move them after all others."""
    for item in items:
        if HERE in Path(str(item.path)).parents:
            item.add_marker(pytest.mark.vm)
            item.add_marker(pytest.mark.timeout(VM_TEST_TIMEOUT_SECONDS))
    items.sort(key=lambda item: item.get_closest_marker("vm") is not None)  # stable sort


@pytest.fixture(scope="session")
def vm_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The light desktop qcow2, built in this session."""
    problem = harness.tools_problem()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"the VM tier needs: {problem}")
        pytest.skip(f"the VM tier needs: {problem}")
    return harness.reused_image() or harness.build_image(tmp_path_factory.mktemp("vm-image"))
