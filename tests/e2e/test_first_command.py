"""The README's first command, run as a new user would, then signed into with Chromium."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.browser import free_port
from tests.support.paths import OUTPUT, ROOT

pytestmark = pytest.mark.e2e


def readme_commands() -> list[str]:
    """The two commands the README opens with (its first code block)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```(?:sh|bash|shell)?\n(.*?)```", text, re.S)
    assert block, "README has no code block"
    return [line.split("#", 1)[0].strip() for line in block.group(1).splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_readme_opens_with_two_commands() -> None:
    commands = readme_commands()
    assert len(commands) == 2
    assert "serve" in commands[0] and "test" in commands[1]
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci, ".ci/run must run the README's test command"


@pytest.fixture
def served_portal(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """Run the README's first command on a free port; yield its URL and demo credentials."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("DAAAS_")},
           "DAAAS_PORT": str(port), "DAAAS_VAR_DIR": str(tmp_path / "var")}
    log = (tmp_path / "serve.log").open("w+")
    process = subprocess.Popen(["bash", "-c", readme_commands()[0]], cwd=ROOT, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield _wait_for_announcement(process, log, port)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
        log.close()


def _wait_for_announcement(process: subprocess.Popen[bytes], log: Any, port: int) -> dict[str, Any]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        log.seek(0)
        output = log.read()
        users = re.findall(r"demo user: (\S+) / (\S+)", output)
        if f"daaas portal: http://127.0.0.1:{port}/" in output and users:
            return {"url": f"http://127.0.0.1:{port}", "user": users[0], "output": output}
        assert process.poll() is None, f"the first command stopped:\n{output}"
        time.sleep(0.5)
    raise AssertionError("the first command did not announce the portal within 300 s")


def test_first_command_serves_portal_and_demo_user_sees_catalogue(
        served_portal: dict[str, Any], browser: Any) -> None:
    page = browser.new_page()
    _wait_until_listening(page, served_portal["url"])
    username, password = served_portal["user"]
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_selector("li.card")
    titles = page.locator("li.card h2").all_inner_texts()
    assert len(titles) >= 3, titles
    assert page.locator("li.card .apps li").count() >= 6
    page.screenshot(path=str(OUTPUT / "analysis-page.png"), full_page=True)
    assert (OUTPUT / "analysis-page.png").stat().st_size > 20_000
    page.close()


def _wait_until_listening(page: Any, url: str) -> None:
    for _ in range(60):
        try:
            page.goto(url + "/")
            return
        except Exception:  # the server may need a moment after announcing
            time.sleep(0.5)
    page.goto(url + "/")
