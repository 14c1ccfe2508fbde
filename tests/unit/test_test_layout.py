"""Test helpers shared between test files live in support modules or conftest fixtures.

A test file importing another test file runs (and collects) that file's tests twice and hides
where a helper lives; a helper named ``test_*`` is even collected as a test. This test fails
when any file under tests/ or benchmarks/ imports from a ``test_*`` module or from a conftest.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support.paths import ROOT


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    modules = {node.module for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom) and node.module}
    modules |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    return modules


def _wrong(module: str) -> bool:
    last = module.rsplit(".", 1)[-1]
    return module.startswith("tests.") and (last.startswith("test_") or last == "conftest")


def test_no_file_imports_a_test_module_or_a_conftest() -> None:
    files = sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "benchmarks").glob("*.py"))
    wrong = {str(path.relative_to(ROOT)): sorted(filter(_wrong, _imported_modules(path)))
             for path in files}
    assert {path: mods for path, mods in wrong.items() if mods} == {}


def test_the_rule_catches_a_test_module_import() -> None:
    assert _wrong("tests.integration.test_api")
    assert _wrong("tests.conftest")
    assert not _wrong("tests.support.web")
