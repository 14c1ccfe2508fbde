"""The QEMU provider: each machine is a real QEMU virtual machine on this host.

- ``provider``: :class:`QemuProvider`, the Provider the portal calls (launch, poll, delete, …);
- ``vm``: one machine's folder, overlay disk, NoCloud seed, QEMU command line and process;
- ``relay``: the small program QEMU runs per guest connection to the portal's address
  (run by path, standard library only).

Process helpers shared with the local provider are in :mod:`daaas.portal.providers.processes`.
"""

from daaas.portal.providers.qemu.provider import QemuProvider, initrd_for, newest_cloud_kernel

__all__ = ["QemuProvider", "initrd_for", "newest_cloud_kernel"]
