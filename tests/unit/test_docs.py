"""Documentation that must not drift from the code."""

from __future__ import annotations

from daaas.portal.config import Settings
from tests.conftest import ROOT


def test_every_setting_is_in_the_admin_guide() -> None:
    guide = (ROOT / "docs" / "admin.md").read_text(encoding="utf-8")
    for key in Settings.model_fields:
        assert f"| `{key}` | `DAAAS_{key.upper()}` |" in guide, f"{key} missing from docs/admin.md"


def test_readme_screenshot_exists() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](docs/screenshots/analysis.png)" in readme
    assert (ROOT / "docs" / "screenshots" / "analysis.png").stat().st_size > 20_000
