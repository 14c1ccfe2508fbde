"""``daaas catalogue ...``: check the catalogue files and show resolved environments."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from daaas.catalogue.collection import Catalogue
from daaas.catalogue.loader import DEFAULT_DIRECTORY, load_catalogue
from daaas.cvmfs.registry import load_registry

_DIRECTORY = click.Path(file_okay=False, path_type=Path)


def _default_directory() -> Path:
    """Return the shipped catalogue folder, relative to the working directory when inside it."""
    relative = Path(os.path.relpath(DEFAULT_DIRECTORY))
    return DEFAULT_DIRECTORY if relative.parts[:1] == ("..",) else relative


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


@click.group("catalogue")
def catalogue_group() -> None:
    """Check and inspect the catalogue of analysis environments."""


@catalogue_group.command("check")
@click.argument("directory", required=False, type=_DIRECTORY)
@click.option("--cvmfs-registry", "registry", envvar="DAAAS_CVMFS_REGISTRY",
              type=click.Path(path_type=Path, dir_okay=False),
              help="CVMFS registry the repositories must be in (default: the shipped one; "
                   "env DAAAS_CVMFS_REGISTRY).")
@click.option("--cloud", help="Also check each environment's image exists in this cloud's "
                              "Glance (a clouds.yaml entry).")
@click.option("--host", "on_host", is_flag=True,
              help="Also say whether each environment can run on this host's local desktops "
                   "(every launcher's program is there), and if not, why.")
def check(directory: Path | None, registry: Path | None, cloud: str | None = None,
          on_host: bool = False) -> None:
    """Check every environment file in DIRECTORY (default: the shipped catalogue).

    Prints one line per problem and a summary; exits with 1 if there is any problem (with
    --cloud: also an environment whose image is missing in Glance). With --host, one line per
    environment says whether it runs on this host (an unavailable one is no problem: the
    portal shows it as not available). An unreadable registry raises RegistryError (the
    ``daaas`` command prints it as one line).
    """
    repositories = load_registry(registry or None).repositories
    catalogue = load_catalogue(directory or _default_directory(), repositories=repositories)
    for problem in catalogue.problems:
        click.echo(str(problem))
    valid = len(catalogue.environments) + len(catalogue.abstract)
    abstract = f" ({len(catalogue.abstract)} abstract)" if catalogue.abstract else ""
    click.echo(f"{_count(valid, 'environment')} valid{abstract}, {len(catalogue.invalid)} invalid")
    if on_host:
        _host_report(catalogue)
    # -- images in Glance (vm_images): `check --cloud CLOUD` --
    missing = _missing_images(catalogue, cloud) if cloud else []
    raise SystemExit(1 if catalogue.problems or missing else 0)


def _host_report(catalogue: Catalogue) -> None:
    """Print whether each environment can run on this host's local desktops, with the
    reason when not, then a summary. Programs are looked for as the portal's desktops look
    for them: at /cvmfs, then in the software roots of the portal's settings (environment and
    DAAAS_CONFIG); unreadable settings count as no roots."""
    from daaas.portal.config import ConfigError, load_settings
    from daaas.portal.providers.local.roots import site_roots
    from daaas.portal.providers.local.software import unavailable_reason

    try:
        settings = load_settings()
        roots = site_roots(settings.software_roots, settings.local_software_dir,
                           as_root=os.geteuid() == 0)
    except (ConfigError, ValueError):
        roots = ()
    available = 0
    for name, environment in sorted(catalogue.environments.items()):
        reason = unavailable_reason(environment, roots=roots)
        available += reason is None
        click.echo(f"{name}: " + ("runs on this host" if reason is None else
                                  f"not available on this host: {reason}"))
    click.echo(f"on this host: {available} available, "
               f"{len(catalogue.environments) - available} not available")


def _missing_images(catalogue: Catalogue, cloud: str) -> list[str]:
    """Print and return one line per launchable environment whose image Glance lacks."""
    import openstack
    from openstack import exceptions

    from daaas.vm_images.upload import missing_images

    try:
        missing = missing_images(openstack.connect(cloud=cloud, app_name="daaas"), catalogue)
    except exceptions.SDKException as exc:
        raise click.ClickException(f"cannot ask the cloud {cloud!r} for images: {exc}") from None
    for line in missing:
        click.echo(line)
    click.echo(f"images in {cloud}: {len(catalogue.environments) - len(missing)} found, "
               f"{len(missing)} missing")
    return missing


@catalogue_group.command("show")
@click.argument("name")
@click.option("--directory", type=_DIRECTORY, help="Catalogue folder (default: shipped one).")
def show(name: str, directory: Path | None) -> None:
    """Print environment NAME as resolved (inheritance applied), as JSON.

    Exits with 1 and the entry's problems if NAME is not a valid environment, or with
    click.ClickException (one line) if there is no such entry.
    """
    catalogue = load_catalogue(directory or _default_directory())
    environment = catalogue.environments.get(name) or catalogue.abstract.get(name)
    if environment is None:
        problems = catalogue.invalid.get(name)
        if not problems:
            known = ", ".join(sorted([*catalogue.environments, *catalogue.abstract])) or "none"
            raise click.ClickException(f"There is no environment called {name!r} in "
                                       f"{catalogue.directory}. Known: {known}.")
        for problem in problems:
            click.echo(str(problem), err=True)
        raise SystemExit(1)
    click.echo(json.dumps(environment.to_dict(), indent=2))
