"""The local provider (the embedded default): each machine is a real desktop session on this
host, Xvnc + openbox + pcmanfm, under ``<var_dir>/sessions/<machine_id>/``.

- ``provider``: :class:`LocalProvider`, the Provider the portal calls (launch, poll, stop, …);
- ``session``: one session on disk (folder, state file, VNC password, X display files) and
  what they say about its state;
- ``start``: starting Xvnc, the window manager and the desktop, and asking the X server
  (python-xlib) whether the window manager manages the desktop;
- ``desktop``: what a session runs and shows: programs and their Debian packages, launchers,
  desktop settings, storage and experiment folders in its home.

Process helpers shared with the QEMU provider are in :mod:`daaas.portal.providers.processes`.
"""

from daaas.portal.providers.local.provider import LocalProvider

__all__ = ["LocalProvider"]
