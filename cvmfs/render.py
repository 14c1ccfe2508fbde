"""Render the files a CVMFS client reads from settings and a list of repositories.

Values are shell-quoted here (CVMFS sources its configuration with a shell); the templates in
``cvmfs/templates/`` only place them.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from daaas import package_path
from daaas.cvmfs.settings import (
    CONFIG_D,
    DEFAULT_LOCAL,
    DOMAIN_D,
    KEYS_ROOT,
    CvmfsClientSettings,
    repository_domain,
)

PACKAGE_DIR = package_path("daaas.cvmfs")
BUNDLED_KEYS_DIR = PACKAGE_DIR / "keys"
_TEMPLATES = Environment(
    loader=FileSystemLoader(PACKAGE_DIR / "templates"),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)


def client_files(
    settings: CvmfsClientSettings, repositories: Sequence[str]
) -> list[tuple[str, str]]:
    """Return ``(path, content)`` for every file the CVMFS client needs.

    Following the CVMFS documentation's layout for local configuration: ``default.local``
    (repositories, proxy chain, cache), ``domain.d/<domain>.local`` per domain (Stratum-1
    servers, keys folder), ``config.d/<repository>.local`` only for a repository whose servers
    differ from its domain's, and the public keys under ``keys/<domain>/``. Nothing is returned
    for an empty repository list. Raises ValueError for an invalid repository name.
    """
    if not repositories:
        return []
    files = [(DEFAULT_LOCAL, _default_local(settings, repositories))]
    domains = dict.fromkeys(repository_domain(repository) for repository in repositories)
    for domain in domains:
        files.append((f"{DOMAIN_D}/{domain}.local",
                      _scoped_conf(domain, settings.server_urls.get(domain, ()), domain)))
    for repository in repositories:
        own = settings.server_urls.get(repository)
        if own or not settings.server_urls.get(repository_domain(repository)):
            files.append((f"{CONFIG_D}/{repository}.local",
                          _scoped_conf(repository, own or (), repository_domain(repository))))
    for domain in domains:
        for name, pem in sorted(public_keys(settings, domain).items()):
            files.append((f"{KEYS_ROOT}/{domain}/{name}", pem.strip() + "\n"))
    return files


def public_keys(settings: CvmfsClientSettings, domain: str) -> dict[str, str]:
    """Return ``{file name: PEM}`` for a domain: keys bundled in ``cvmfs/keys/<domain>/``,
    overridden by the site's. Raises nothing; a missing folder means no bundled keys."""
    bundled = {
        path.name: path.read_text(encoding="ascii")
        for path in sorted((BUNDLED_KEYS_DIR / domain).glob("*.pub"))
    }
    return {**bundled, **settings.public_keys.get(domain, {})}


def _default_local(settings: CvmfsClientSettings, repositories: Sequence[str]) -> str:
    return _TEMPLATES.get_template("default.local.j2").render(
        repositories=shlex.quote(",".join(repositories)),
        http_proxy=shlex.quote(settings.http_proxy),
        quota_limit=settings.quota_limit_mb,
        cache_base=shlex.quote(settings.cache_base),
        extra=[(key, shlex.quote(value)) for key, value in sorted(settings.extra.items())],
    )


def _scoped_conf(scope: str, urls: Sequence[str], keys_domain: str) -> str:
    """The settings of one domain or repository: its servers and where its keys are."""
    return _TEMPLATES.get_template("repository.conf.j2").render(
        scope=scope,
        server_url=shlex.quote(";".join(urls)) if urls else "",
        keys_dir=shlex.quote(f"{KEYS_ROOT}/{keys_domain}"),
    )
