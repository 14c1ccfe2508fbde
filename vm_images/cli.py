"""``daaas images ...``: build an environment's VM image, upload it to Glance, roll back/forward."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from daaas.catalogue.loader import DEFAULT_DIRECTORY, load_catalogue
from daaas.catalogue.model import Environment
from daaas.vm_images import build as builder
from daaas.vm_images import upload as glance
from daaas.vm_images.recipe import (
    Element,
    environment_chain,
    external_elements,
    load_elements,
    packages,
)

_CATALOGUE = click.option("--catalogue", "directory", type=click.Path(file_okay=False,
                          path_type=Path), help="Catalogue folder (default: the shipped one).")
_CLOUD = click.option("--cloud", envvar="DAAAS_OPENSTACK_CLOUD",
                      help="clouds.yaml cloud (default: the portal's openstack_cloud).")


@click.group("images")
def images_group() -> None:
    """Build, upload and roll back the VM images of the catalogue's environments."""


def _environment(name: str, directory: Path | None) -> tuple[Environment, list[Element]]:
    catalogue = load_catalogue(directory or DEFAULT_DIRECTORY)
    chain = environment_chain(catalogue, name, load_elements())
    return catalogue.environments.get(name) or catalogue.abstract[name], chain


@images_group.command("recipe")
@click.argument("environment")
@_CATALOGUE
def recipe(environment: str, directory: Path | None) -> None:
    """Print ENVIRONMENT's element chain and the packages its image gets."""
    _env, chain = _environment(environment, directory)
    click.echo("elements: " + " ".join([*external_elements(chain), *(e.name for e in chain)]))
    click.echo("packages: " + " ".join(packages(chain, os.environ)))


@images_group.command("build")
@click.argument("environment")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Image file (default: daaas-ENV.qcow2 in the current folder).")
@click.option("--format", "fmt", type=click.Choice(["qcow2", "raw"]), default="qcow2")
@click.option("--rootfs-only", is_flag=True,
              help="Build the root filesystem with mmdebstrap (no bootloader; boots with an "
                   "external kernel, e.g. the QEMU provider's).")
@click.option("--size", default="4G", help="Disk size of a --rootfs-only image.")
@click.option("--mirror", default="", help="Debian mirror for mmdebstrap (default: Debian's).")
@_CATALOGUE
def build(environment: str, output: Path | None, fmt: str, rootfs_only: bool, size: str,
          mirror: str, directory: Path | None) -> None:
    """Build ENVIRONMENT's image with diskimage-builder, or with mmdebstrap when DIB cannot run.

    The element chain mirrors the catalogue's `extends:`; see `daaas images recipe ENV`.
    """
    output = (output or Path(f"daaas-{environment}.{fmt}")).resolve()
    log = output.with_suffix(".build.log")
    _env, chain = _environment(environment, directory)
    problem = builder.dib_problem()
    if not rootfs_only and problem is None:
        builder.run_dib(chain, output, fmt, log, os.environ)
    else:
        if not rootfs_only:
            click.echo(f"disk-image-create cannot run here ({problem}); building the root "
                       "filesystem with mmdebstrap instead", err=True)
        modules = builder.host_kernel_modules()
        plan = builder.rootfs_plan(chain, os.environ, mirror=mirror,
                                   kernel_modules=str(modules or ""))
        rootfs = output.parent / f"{output.stem}.rootfs"
        try:
            builder.build_rootfs(plan, rootfs, log)
            builder.make_disk(rootfs, output, size, fmt, log)
        finally:
            builder.remove_tree(rootfs)
    click.echo(f"{output} (log: {log})")


def _connection(cloud: str | None) -> Any:
    import openstack
    from openstack import exceptions

    from daaas.portal.config import load_settings

    name = cloud or load_settings().openstack_cloud
    if not name:
        raise click.ClickException("Name the cloud: --cloud NAME (a clouds.yaml entry) or the "
                                   "portal's openstack_cloud setting.")
    try:
        return openstack.connect(cloud=name, app_name="daaas-images")
    except exceptions.SDKException as exc:
        raise click.ClickException(f"cloud {name!r}: {exc}") from None


@contextmanager
def _cloud_errors() -> Iterator[None]:
    """Translate the cloud's exceptions at this boundary into ImageError ("Glance refused")."""
    from openstack import exceptions

    try:
        yield
    except exceptions.SDKException as exc:
        raise glance.ImageError(f"Glance refused: {exc}") from None


@images_group.command("upload")
@click.argument("environment")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_CLOUD
@_CATALOGUE
def upload(environment: str, file: Path, cloud: str | None, directory: Path | None) -> None:
    """Upload FILE as ENVIRONMENT's newest image; launches use it from now on."""
    env = _catalogue_environment(environment, directory)
    if not file.is_file():
        raise click.ClickException(f"There is no image file {file}: build one with `daaas images "
                                   f"build {environment}`, or give an existing file's path.")
    with _cloud_errors():
        image = glance.upload(_connection(cloud), env, file, datetime.now(UTC))
    click.echo(f"uploaded {image.name} ({image.id}); launches of {environment} use it now")


@images_group.command("list")
@click.argument("environment")
@_CLOUD
@_CATALOGUE
def list_(environment: str, cloud: str | None, directory: Path | None) -> None:
    """List ENVIRONMENT's images, newest first; `*` marks the one launches use."""
    env = _catalogue_environment(environment, directory)
    with _cloud_errors():
        rows = glance.list_images(_connection(cloud), env)
    for row in rows:
        flag = "*" if row.current else ("retired" if row.retired else "")
        click.echo(f"{flag:8}{row.id}\t{row.name}\t{row.built_at}\t{row.status}")
    if not rows:
        click.echo(f"no images of {environment} (upload one: daaas images upload "
                   f"{environment} FILE)")


@images_group.command("retire")
@click.argument("environment")
@click.argument("image")
@_CLOUD
@_CATALOGUE
def retire(environment: str, image: str, cloud: str | None, directory: Path | None) -> None:
    """Roll back: launches stop using IMAGE (id or name); it stays in Glance."""
    env = _catalogue_environment(environment, directory)
    with _cloud_errors():
        current = glance.retire(_connection(cloud), env, image)
    _say_current(environment, current)


@images_group.command("restore")
@click.argument("environment")
@click.argument("image")
@_CLOUD
@_CATALOGUE
def restore(environment: str, image: str, cloud: str | None, directory: Path | None) -> None:
    """Roll forward: a retired IMAGE may be used again (when it is the newest kept)."""
    env = _catalogue_environment(environment, directory)
    with _cloud_errors():
        current = glance.restore(_connection(cloud), env, image)
    _say_current(environment, current)


def _catalogue_environment(name: str, directory: Path | None) -> Environment:
    catalogue = load_catalogue(directory or DEFAULT_DIRECTORY)
    env = catalogue.environments.get(name)
    if env is None:
        known = ", ".join(sorted(catalogue.environments)) or "none"
        raise click.ClickException(f"no launchable environment {name!r} in "
                                   f"{catalogue.directory}. Known: {known}.")
    return env


def _say_current(environment: str, current: Any) -> None:
    if current is None:
        click.echo(f"{environment} has no usable image now: launches fail until one is "
                   "uploaded or restored")
    else:
        click.echo(f"launches of {environment} use {current.name} ({current.id})")
