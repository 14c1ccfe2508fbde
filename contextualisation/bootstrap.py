"""What the VM's bootstrap agent is told: /etc/daaas/bootstrap.json and the services it starts.

The agent (``contextualisation/agent/daaas-bootstrap``, installed in the image as
``/usr/local/sbin/daaas-bootstrap``) reads this document, exchanges the token for the session's
secrets, installs them, mounts storage, starts services and reports to the portal. The document's
fields are described in BOOTSTRAP_PROTOCOL.md.
"""

from __future__ import annotations

from typing import Any

from daaas import package_path
from daaas.contextualisation.context import Context

BOOTSTRAP_CONFIG_PATH = "/etc/daaas/bootstrap.json"
AGENT_PATH = "/usr/local/sbin/daaas-bootstrap"
AGENT_SOURCE = package_path("daaas.contextualisation", "agent", "daaas-bootstrap")
DOCUMENT_VERSION = 1
VNC_DISPLAY = 1
VNC_PORT = 5900 + VNC_DISPLAY
RDP_SIGN_IN_PATH = "/etc/daaas/rdp-sign-in.json"
SECRET_DIRS = ("/etc/daaas/secrets", "/etc/ceph", "/etc/munge")
ACCESS_UNITS = {
    "vnc": f"tigervncserver@:{VNC_DISPLAY}.service",
    "xrdp": "xrdp.service",
    "ssh": "ssh.service",
}


def services(ctx: Context) -> tuple[list[str], list[str]]:
    """Return ``(enable, disable)``: systemd units to start and to stop, all shipped by the image.

    Access services not asked for are stopped; autofs (which mounts /cvmfs) runs when the
    session has CVMFS repositories and the site mounts them with autofs (not fstab). Slurm
    clients authenticate with the user's JWT, so munge is
    never started (a munge key on a VM would let its root act as anyone). Raises nothing.
    """
    wanted = ctx.access.model_dump()
    enable = [unit for name, unit in ACCESS_UNITS.items() if wanted[name]]
    disable = [unit for name, unit in ACCESS_UNITS.items() if not wanted[name]]
    if ctx.cvmfs_repositories and ctx.cvmfs.mount == "autofs":
        enable.insert(0, "autofs.service")
    return enable, disable


def bootstrap_document(ctx: Context) -> dict[str, Any]:
    """Return the bootstrap.json document for a context (includes the single-use token).

    Raises nothing; every value was validated when the Context was built.
    """
    enable, disable = services(ctx)
    return {
        "version": DOCUMENT_VERSION,
        "machine_id": ctx.machine_id,
        "environment": ctx.environment_name,
        "callback_url": ctx.callback_url,
        "token": ctx.bootstrap_token,
        "user": {
            "name": ctx.user.username,
            "uid": ctx.user.uid,
            "gid": ctx.user.gid,
            "home": ctx.user.home,
        },
        "vnc_password_file": f"{ctx.user.home}/.vnc/passwd" if ctx.access.vnc else None,
        # RDP signs in with the portal's one-time token (PAM, rdp_sign_in_file): no login
        # password is set, so nothing reusable is stored in the VM (older agents read this).
        "set_login_password": False,
        "authorized_keys_file": f"{ctx.user.home}/.ssh/authorized_keys" if ctx.access.ssh
        else None,
        "rdp_sign_in_file": RDP_SIGN_IN_PATH if ctx.access.xrdp else None,
        "mounts": [mount.target for mount in ctx.mounts],
        "cvmfs_repositories": list(ctx.cvmfs_repositories),
        "secret_dirs": list(SECRET_DIRS),
        "services": {"enable": enable, "disable": disable},
    }
