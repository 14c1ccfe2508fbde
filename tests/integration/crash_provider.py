"""A provider double for crash tests: a real LocalProvider that hangs right after launching.

Named in configuration as ``tests.integration.crash_provider:PauseAfterLaunch`` so a real
``daaas worker`` process can be killed exactly between the provider's launch and the state
update.
"""

from __future__ import annotations

import time

from daaas.portal.providers import LaunchSpec
from daaas.portal.providers.local import LocalProvider


class PauseAfterLaunch(LocalProvider):
    """Launches for real, writes ``launched-<id>`` beside the sessions folder, then hangs."""

    def launch(self, spec: LaunchSpec) -> None:
        """Start the session, leave a marker, and never return (until killed)."""
        super().launch(spec)
        (self.sessions_dir.parent / f"launched-{spec.machine_id}").touch()
        time.sleep(3600)


class PauseAfterPersonalise(LocalProvider):
    """Hands a pooled machine to its user for real, writes ``personalised-<id>`` beside the
    sessions folder, then hangs (a worker killed between the hand-over and its record)."""

    def personalise(self, spec: LaunchSpec) -> None:
        """Start the user's session, leave a marker, and never return (until killed)."""
        super().personalise(spec)
        (self.sessions_dir.parent / f"personalised-{spec.machine_id}").touch()
        time.sleep(3600)
