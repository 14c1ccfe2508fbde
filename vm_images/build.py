"""Building an environment's image: diskimage-builder, or a root filesystem with mmdebstrap.

``disk-image-create`` runs the element chain for real (partitions, bootloader, kernel) on an
operator's build host. Where it cannot run (no diskimage-builder, no loop devices or mounts, as
in CI), :func:`build_rootfs` makes a root filesystem with mmdebstrap from the SAME package lists
and runs the same elements' hooks in it, and :func:`make_disk` turns it into an ext4 disk
(``mkfs.ext4 -d``, no loop mount) converted to qcow2 or raw. Such a disk has no bootloader: it
boots with an external kernel (the QEMU provider, the VM tests), see docs/admin.md.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from daaas import package_path
from daaas.vm_images.recipe import (
    IN_IMAGE_PHASES,
    Element,
    RecipeError,
    environment_defaults,
    external_elements,
    packages,
)

#: The installed ``daaas`` package (or the checkout's daaas/ links): what elements read.
SOURCE_DIR = package_path("daaas")
ROOT_LABEL = "daaas-root"
#: Elements whose pre-install.d adds package sources; the mmdebstrap path cannot honour that.
NEEDS_DIB = {"daaas-gpu": "the NVIDIA driver and VirtualGL come from the site's package source"}


class BuildError(Exception):
    """An image could not be built; the message says what to do."""


@dataclass(frozen=True)
class RootfsPlan:
    """What :func:`build_rootfs` will do: Debian suite, packages and hooks of the chain."""

    chain: list[Element]
    packages: list[str]
    suite: str = "bookworm"
    mirror: str = ""
    environ: dict[str, str] = field(default_factory=dict)
    kernel_modules: str = ""  # a /lib/modules/<version> of this host to copy in

    def hooks(self, phase: str) -> list[Path]:
        """Return ``phase`` scripts of every element, by script name (DIB merges them so)."""
        scripts = [hook for element in self.chain for hook in element.hooks(phase)]
        return sorted(scripts, key=lambda path: path.name)


def rootfs_plan(chain: list[Element], environ: Mapping[str, str] | None = None, *,
                mirror: str = "", kernel_modules: str = "") -> RootfsPlan:
    """Return the plan for ``chain``. Raises BuildError when only diskimage-builder can build it.

    ``environ`` overrides the elements' environment.d defaults (e.g. DIB_DAAAS_CVMFS).
    """
    values = {**environment_defaults(chain), **(environ or {})}
    for element in chain:
        if element.name in NEEDS_DIB:
            raise BuildError(f"{element.name}: {NEEDS_DIB[element.name]}, which only a "
                             "diskimage-builder build can add; run without --rootfs-only on a "
                             "build host (docs/admin.md, \"VM images\").")
    if values.get("DIB_DAAAS_CVMFS") == "1":
        raise BuildError("DIB_DAAAS_CVMFS=1 adds the site's CVMFS package source, which only a "
                         "diskimage-builder build can do; run without --rootfs-only.")
    try:
        wanted = packages(chain, values)
    except RecipeError as exc:
        raise BuildError(str(exc)) from None
    return RootfsPlan(chain, wanted, values.get("DIB_RELEASE", "bookworm"), mirror, values,
                      kernel_modules)


def hook_script(plan: RootfsPlan) -> str:
    """Return the bash script mmdebstrap runs as its customize hook (``$1``: the root).

    It runs the elements' extra-data.d scripts on the host (TMP_HOOKS_PATH inside the root),
    copies this host's kernel modules when asked, then every install.d and post-install.d
    script inside the root with chroot, as diskimage-builder would, and tidies up.
    """
    exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(plan.environ.items()))
    hooks = '"$1/tmp/in_target.d"'
    lines = ["#!/bin/bash", "set -eu -o pipefail", f"mkdir -p {hooks}",
             f"export {exports} DAAAS_SOURCE_DIR={shlex.quote(str(SOURCE_DIR))}"
             if exports else f"export DAAAS_SOURCE_DIR={shlex.quote(str(SOURCE_DIR))}"]
    for script in plan.hooks("extra-data.d"):
        lines.append(f"TMP_HOOKS_PATH={hooks} bash {shlex.quote(str(script))}")
    if plan.kernel_modules:
        lines += ['mkdir -p "$1/lib/modules"',
                  f'cp -a {shlex.quote(plan.kernel_modules)} "$1/lib/modules/"']
    lines.append(f'echo "LABEL={ROOT_LABEL} / ext4 defaults 0 1" > "$1/etc/fstab"')
    for phase in IN_IMAGE_PHASES[1:]:
        for script in plan.hooks(phase):
            target = f"/tmp/in_target.d/{phase}/{script.name}"
            lines += [f'install -D -m 0755 {shlex.quote(str(script))} "$1{target}"',
                      f'chroot "$1" env {exports} {target}']
    lines.append(f'rm -rf {hooks} "$1/var/lib/apt/lists/"*_Packages "$1/var/cache/apt/"*.bin')
    return "\n".join(lines) + "\n"


def mmdebstrap_command(plan: RootfsPlan, target: Path, hook: Path) -> list[str]:
    """Return the mmdebstrap command making ``target`` (a folder) from the plan."""
    command = ["mmdebstrap", "--variant=minbase", "--format=directory",
               f"--include={','.join(plan.packages)}",
               "--dpkgopt=path-exclude=/usr/share/doc/*",
               "--dpkgopt=path-exclude=/usr/share/man/*",
               "--dpkgopt=path-exclude=/usr/share/locale/*",
               "--dpkgopt=path-include=/usr/share/locale/locale.alias",
               f"--customize-hook={shlex.quote(str(hook))} \"$1\"",
               plan.suite, str(target)]
    return [*command, plan.mirror] if plan.mirror else command


def build_rootfs(plan: RootfsPlan, target: Path, log: Path) -> Path:
    """Make the root filesystem ``target`` (a new folder); return it.

    Raises BuildError (with the log's tail) when mmdebstrap is missing or fails.
    """
    if shutil.which("mmdebstrap") is None:
        raise BuildError("mmdebstrap is not installed (Debian package mmdebstrap).")
    hook = target.parent / f"{target.name}.customize.sh"
    hook.write_text(hook_script(plan), encoding="utf-8")
    hook.chmod(0o755)
    _run(mmdebstrap_command(plan, target, hook), log, "mmdebstrap")
    return target


def make_disk(rootfs: Path, output: Path, size: str = "2G", fmt: str = "qcow2",
              log: Path | None = None) -> Path:
    """Write ``rootfs`` into an ext4 disk ``output`` (labelled daaas-root) of ``size``.

    ``fmt`` is qcow2 (converted with qemu-img) or raw. Raises BuildError when a tool fails.
    """
    log = log or output.with_suffix(".log")
    raw = output if fmt == "raw" else output.with_suffix(".raw")
    raw.unlink(missing_ok=True)
    _run(["mkfs.ext4", "-q", "-F", "-L", ROOT_LABEL, "-d", str(rootfs), str(raw), size],
         log, "mkfs.ext4")
    if fmt != "raw":
        _run(["qemu-img", "convert", "-f", "raw", "-O", fmt, str(raw), str(output)], log,
             "qemu-img")
        raw.unlink()
    return output


def dib_problem() -> str | None:
    """Return why disk-image-create cannot run on this host, or None when it can."""
    if shutil.which("disk-image-create") is None:
        return "diskimage-builder is not installed (pip install diskimage-builder)"
    if os.geteuid() != 0 and shutil.which("sudo") is None:
        return "diskimage-builder needs root (or sudo) for its chroot and loop devices"
    if not Path("/dev/loop-control").exists():
        return "no loop devices (/dev/loop-control): diskimage-builder cannot partition a disk"
    return None


def dib_command(chain: list[Element], output: Path, fmt: str = "qcow2",
                environ: Mapping[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    """Return the disk-image-create command and its environment for ``chain``."""
    elements_dir = str(chain[-1].path.parent)
    env = {**os.environ, **environment_defaults(chain), **(environ or {}),
           "ELEMENTS_PATH": elements_dir, "DAAAS_SOURCE_DIR": str(SOURCE_DIR)}
    command = ["disk-image-create", "-a", "amd64", "-t", fmt, "-o", str(output),
               *external_elements(chain), chain[-1].name]
    return command, env


def run_dib(chain: list[Element], output: Path, fmt: str, log: Path,
            environ: Mapping[str, str] | None = None) -> Path:
    """Run disk-image-create; return the image. Raises BuildError when it fails."""
    command, env = dib_command(chain, output.with_suffix(""), fmt, environ)
    _run(command, log, "disk-image-create", env)
    return output


def _run(command: Sequence[str], log: Path, what: str,
         env: Mapping[str, str] | None = None) -> None:
    with log.open("a", encoding="utf-8") as handle:
        handle.write(f"$ {shlex.join(command)}\n")
        handle.flush()
        try:
            done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT,
                                  env=dict(env) if env else None, check=False)
        except OSError as exc:
            raise BuildError(f"{what} cannot run: {exc}") from None
    if done.returncode != 0:
        tail = log.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise BuildError(f"{what} failed (exit {done.returncode}); the end of {log}:\n"
                         + "\n".join(tail))


def host_kernel_modules(modules: Path = Path("/lib/modules")) -> Path | None:
    """Return this host's newest ``/lib/modules/<version>-cloud-amd64``, or None.

    A --rootfs-only image boots with this host's cloud kernel (the QEMU provider's default),
    so it carries the matching modules (iso9660 for the NoCloud seed, virtio drivers).
    """
    found = sorted(modules.glob("*-cloud-amd64"),
                   key=lambda p: [int(n) for n in p.name.replace("-", ".").split(".")
                                  if n.isdigit()])
    return found[-1] if found else None


def remove_tree(path: Path) -> None:
    """Remove a root filesystem folder (root-owned files included); missing is fine."""
    if path.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)
