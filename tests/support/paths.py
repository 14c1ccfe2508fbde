"""Where the checkout is and where tests put what a person would look at (screenshots, logs)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


OUTPUT = Path(os.environ.get("DAAAS_TEST_OUTPUT", ROOT / "test-output"))
