"""The files a session's VM gets, rendered from the dumb templates in ``templates/``.

All decisions (what to write, escaping, labels) are made here; templates only place values.
"""

from __future__ import annotations

import json
import shlex
from typing import Any, NamedTuple

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from daaas import package_path
from daaas.contextualisation import launchers as desktop
from daaas.contextualisation.bootstrap import BOOTSTRAP_CONFIG_PATH, VNC_DISPLAY, bootstrap_document
from daaas.contextualisation.context import Context, Mount
from daaas.contextualisation.launchers import Launcher
from daaas.contextualisation.validation import CONTROL_RE
from daaas.cvmfs import client_files

_TEMPLATES = Environment(
    loader=FileSystemLoader(package_path("daaas.contextualisation", "templates")),
    undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
    lstrip_blocks=True, autoescape=False,
)
#: Where the bootstrap exchange installs the user's Slurm JWT (the portal's portal.hpc.machine).
HPC_JWT_FILE = "/etc/daaas/secrets/slurm.jwt"
HPC_LAUNCHER_NAME = "Submit to HPC"
HPC_LAUNCHER_FILE = "daaas-submit-to-hpc.desktop"
_LABELS = {"storage": "Your storage, kept when this machine is deleted",
           "experiment": "Experiment data"}


class File(NamedTuple):
    """One file for cloud-init's write_files; ``defer`` waits until the user exists."""

    path: str
    content: str
    permissions: str = "0644"
    owner: str = "root:root"
    defer: bool = False


def session_files(ctx: Context) -> list[File]:
    """Return every file the VM needs, in writing order. Raises nothing."""
    files = [File(BOOTSTRAP_CONFIG_PATH, json.dumps(bootstrap_document(ctx), indent=2) + "\n",
                  "0600"),
             File("/etc/motd", _render("motd.j2", **motd_fields(ctx)))]
    files += [File(path, content) for path, content in client_files(ctx.cvmfs,
                                                                     ctx.cvmfs_repositories)]
    files += desktop_files(ctx) + access_files(ctx)
    if ctx.hpc.enabled:
        files.append(File("/etc/profile.d/daaas-hpc.sh", _render("hpc-profile.sh.j2", **{
            key: shlex.quote(value) if value else "" for key, value in ctx.hpc.model_dump().items()
        }, jwt_file=HPC_JWT_FILE)))
        files += hpc_launcher_files(ctx)
    return files


def hpc_launcher_files(ctx: Context) -> list[File]:
    """Return the "Submit to HPC" desktop entry (menu and Desktop), opening the portal's Jobs
    page for this machine in the machine's browser. Raises nothing."""
    url = f"{ctx.callback_url}/jobs?machine={ctx.machine_id}"
    content = _render("desktop-entry.j2", environment=ctx.environment_name,
                      name=HPC_LAUNCHER_NAME,
                      comment="Submit and follow batch jobs on the HPC cluster",
                      exec=desktop.exec_value(["xdg-open", url]), icon="applications-system",
                      terminal="false", categories="Science;")
    owner = f"{ctx.user.username}:{ctx.user.group}"
    return [File(f"/usr/share/applications/{HPC_LAUNCHER_FILE}", content),
            File(f"{ctx.user.home}/Desktop/{HPC_LAUNCHER_FILE}", content, "0755", owner, True)]


def desktop_files(ctx: Context) -> list[File]:
    """Return each launcher's desktop entry for the menu and, owned by the user, the Desktop.

    Both copies of a launcher are adjacent so gzip finds the repetition. Raises nothing.
    """
    files: list[File] = []
    owner = f"{ctx.user.username}:{ctx.user.group}"
    for name, content in desktop_entries(ctx.environment_name, ctx.launchers, ctx.icon_dir):
        files.append(File(f"/usr/share/applications/{name}", content))
        files.append(File(f"{ctx.user.home}/Desktop/{name}", content, "0755", owner, True))
    return files


def desktop_entries(environment_name: str, launchers: tuple[Launcher, ...],
                    icon_dir: str) -> list[tuple[str, str]]:
    """Return ``(file name, Desktop Entry text)`` per launcher: the one description of a
    session's icons, used by cloud-init user-data and by the local desktop provider alike.
    Raises nothing."""
    return [(name, _render("desktop-entry.j2", environment=environment_name,
                           name=desktop.escape_string(launcher.name),
                           comment=desktop.escape_string(launcher.description),
                           exec=desktop.exec_value(launcher.argv),
                           icon=desktop.icon_value(launcher.icon, icon_dir),
                           terminal="true" if launcher.terminal else "false",
                           categories=desktop.categories(launcher.category)))
            for launcher, name in zip(launchers, desktop.file_names(launchers), strict=True)]


def access_files(ctx: Context) -> list[File]:
    """Return the VNC server and xrdp configuration for the services switched on. Raises nothing."""
    files = []
    if ctx.access.vnc:
        files.append(File("/etc/tigervnc/vncserver-config-mandatory",
                          _render("vncserver-config-mandatory.j2", geometry=ctx.vnc_geometry)))
        files.append(File("/etc/tigervnc/vncserver.users", _render(
            "vncserver.users.j2", display=VNC_DISPLAY, username=ctx.user.username)))
    if ctx.access.xrdp:
        files.append(File("/etc/xrdp/xrdp.ini", _render("xrdp.ini.j2")))
    return files


def motd_fields(ctx: Context) -> dict[str, Any]:
    """Return the values of the message of the day, each made one safe line of text.

    Raises nothing.
    """
    return {
        "title": one_line(ctx.title), "name": ctx.environment_name,
        "machine_id": ctx.machine_id, "mounts": [_mount_row(m) for m in ctx.mounts],
        "repositories": list(ctx.cvmfs_repositories), "applications": len(ctx.launchers),
        "cluster": ctx.hpc.cluster_name or ctx.hpc.slurmctld_host,
    }


def one_line(value: str) -> str:
    """Return ``value`` with line breaks and control characters replaced by spaces.

    Raises nothing.
    """
    return " ".join(CONTROL_RE.sub(" ", value).split())


def _mount_row(mount: Mount) -> dict[str, str]:
    label = one_line(mount.label) or _LABELS.get(mount.purpose, mount.source)
    access = "read-only" if mount.read_only else "read-write"
    return {"target": mount.target, "access": access, "label": label}


def _render(template: str, **values: Any) -> str:
    return _TEMPLATES.get_template(template).render(**values)
