"""The registry of CVMFS repositories a site offers, kept as data (``repositories.yaml``).

Catalogue entries are checked against it, and it supplies the client settings (Stratum-1
servers per domain or repository, key file names) that contextualisation renders.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from daaas import package_path
from daaas.cvmfs.settings import repository_domain, validate_repository_name

SHIPPED_REGISTRY = package_path("daaas.cvmfs", "repositories.yaml")


class RegistryError(ValueError):
    """A registry file that cannot be used; the message names the file and the field."""


@dataclass(frozen=True)
class Repository:
    """One repository: its name, domain, servers (own, else its domain's) and key files."""

    name: str
    domain: str
    server_urls: tuple[str, ...]
    public_keys: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class Registry:
    """Every repository the site offers, by name."""

    path: Path
    repositories: dict[str, Repository]

    def server_urls(self) -> dict[str, tuple[str, ...]]:
        """Return servers keyed by domain and by repository, for CvmfsClientSettings."""
        urls: dict[str, tuple[str, ...]] = {}
        for repository in self.repositories.values():
            urls.setdefault(repository.domain, repository.server_urls)
            if repository.server_urls != urls[repository.domain]:
                urls[repository.name] = repository.server_urls
        return urls

    def unknown(self, names: list[str] | tuple[str, ...]) -> list[str]:
        """Return the names in ``names`` that the registry does not list."""
        return [name for name in names if name not in self.repositories]


def load_registry(path: Path | None = None) -> Registry:
    """Read the registry at ``path`` (default: the shipped one).

    Returns the Registry. Raises RegistryError naming the file and the field for unreadable
    YAML, a missing or ill-typed field, an invalid repository name or server URL.
    """
    path = Path(path or SHIPPED_REGISTRY)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise RegistryError(f"{path}: cannot read the CVMFS registry: {exc}") from None
    if not isinstance(data, dict):
        raise RegistryError(f"{path}: expected a mapping with 'domains' and 'repositories'")
    domains = _mapping(data.get("domains", {}), path, "domains")
    repositories = {}
    for index, entry in enumerate(_list(data.get("repositories"), path, "repositories")):
        repository = _repository(entry, domains, path, f"repositories[{index}]")
        repositories[repository.name] = repository
    return Registry(path=path, repositories=repositories)


def _repository(entry: Any, domains: dict[str, Any], path: Path, where: str) -> Repository:
    entry = _mapping(entry, path, where)
    try:
        name = validate_repository_name(entry.get("name"))
    except ValueError as exc:
        raise RegistryError(f"{path}: field '{where}.name': {exc}") from None
    domain = repository_domain(name)
    defaults = _mapping(domains.get(domain, {}), path, f"domains.{domain}")
    urls = entry.get("server_urls", defaults.get("server_urls"))
    keys = entry.get("public_keys", defaults.get("public_keys"))
    if not urls or not keys:
        raise RegistryError(f"{path}: field '{where}': expected server_urls and public_keys for "
                            f"{name}, on the entry or under domains.{domain}")
    for url in _list(urls, path, f"{where}.server_urls"):
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) \
                or "@fqrn@" not in url:
            raise RegistryError(f"{path}: field '{where}.server_urls': expected http(s) URLs "
                                f"containing @fqrn@ (got {url!r})")
    return Repository(name=name, domain=domain, server_urls=tuple(urls),
                      public_keys=tuple(_list(keys, path, f"{where}.public_keys")),
                      description=str(entry.get("description", "")))


def _mapping(value: Any, path: Path, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise RegistryError(f"{path}: field '{field}': expected a mapping")
    return value


def _list(value: Any, path: Path, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise RegistryError(f"{path}: field '{field}': expected a list")
    return value
