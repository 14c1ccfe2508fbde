"""Validated CVMFS client settings with the defaults a site overrides.

Every value ends up in a shell-sourced CVMFS configuration file, so each is checked against a
narrow pattern here and shell-quoted again when rendered.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_HTTP_PROXY = "DIRECT"
DEFAULT_QUOTA_LIMIT_MB = 10000
DEFAULT_CACHE_BASE = "/var/lib/cvmfs"
KEYS_ROOT = "/etc/cvmfs/keys"
CONFIG_D = "/etc/cvmfs/config.d"
DOMAIN_D = "/etc/cvmfs/domain.d"
DEFAULT_LOCAL = "/etc/cvmfs/default.local"

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_REPOSITORY_RE = re.compile(rf"^{_LABEL}(?:\.{_LABEL})+$")
_PROXY_RE = re.compile(r"^[A-Za-z0-9.:/;|_@%\[\]-]+$")
_URL_RE = re.compile(r"^https?://[A-Za-z0-9.:/_@%\[\]-]+$")
_KEY_FILE_RE = re.compile(r"^[A-Za-z0-9._-]+\.pub$")
_PARAM_RE = re.compile(r"^CVMFS_[A-Z0-9_]+$")
_PATH_RE = re.compile(r"^/[A-Za-z0-9._/-]*$")
_PEM_HEADER = "-----BEGIN PUBLIC KEY-----"


def validate_repository_name(name: str) -> str:
    """Check a repository's fully qualified name (``ccp4.example.org``).

    Returns the name unchanged. Raises ValueError when it is not a lower-case DNS name with a dot.
    """
    if not isinstance(name, str) or len(name) > 253 or not _REPOSITORY_RE.match(name):
        raise ValueError(f"'{name}' is not a CVMFS repository name like 'software.example.org'")
    return name


def repository_domain(name: str) -> str:
    """Return the domain of a repository (``example.org`` for ``ccp4.example.org``).

    Raises ValueError for an invalid repository name.
    """
    return validate_repository_name(name).split(".", 1)[1]


class CvmfsClientSettings(BaseModel):
    """The site's CVMFS client settings (``default.local``, server URLs, public keys).

    Invalid values raise pydantic.ValidationError.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    http_proxy: str = Field(default=DEFAULT_HTTP_PROXY, description="CVMFS_HTTP_PROXY.")
    mount: Literal["autofs", "fstab"] = Field(
        default="autofs", description="autofs mounts /cvmfs/<repo> on first use; fstab mounts "
        "each repository at boot.")
    quota_limit_mb: int = Field(default=DEFAULT_QUOTA_LIMIT_MB, ge=1000, description="Cache MB.")
    cache_base: str = Field(default=DEFAULT_CACHE_BASE, description="CVMFS_CACHE_BASE.")
    server_urls: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="Stratum-1 URLs (with @fqrn@) keyed by repository name or domain.",
    )
    public_keys: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Domain -> {file name: PEM public key}."
    )
    extra: dict[str, str] = Field(
        default_factory=dict, description="Further CVMFS_* parameters for default.local."
    )

    @field_validator("http_proxy")
    @classmethod
    def _proxy(cls, value: str) -> str:
        if not _PROXY_RE.match(value):
            raise ValueError("must be a CVMFS proxy list like 'http://squid:3128;DIRECT'")
        return value

    @field_validator("cache_base")
    @classmethod
    def _cache_base(cls, value: str) -> str:
        if not _PATH_RE.match(value):
            raise ValueError("must be an absolute path of letters, digits, '.', '_', '-', '/'")
        return value

    @field_validator("server_urls")
    @classmethod
    def _urls(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for urls in value.values():
            for url in urls:
                if not _URL_RE.match(url):
                    raise ValueError(f"'{url}' is not an http(s) URL without ';' or spaces")
        return value

    @field_validator("public_keys")
    @classmethod
    def _keys(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for domain, files in value.items():
            validate_repository_name(domain)
            for name, pem in files.items():
                if not _KEY_FILE_RE.match(name) or not pem.strip().startswith(_PEM_HEADER):
                    raise ValueError(f"key '{name}' for {domain} must be a PEM '<name>.pub'")
        return value

    @field_validator("extra")
    @classmethod
    def _extra(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not _PARAM_RE.match(key) or any(ch in item for ch in "\r\n\0"):
                raise ValueError(f"'{key}' must be a CVMFS_* parameter with a one-line value")
        return value

    def urls_for(self, repository: str) -> tuple[str, ...]:
        """Return the server URLs for a repository: its own entry, else its domain's, else ().

        Raises nothing.
        """
        return self.server_urls.get(repository) or self.server_urls.get(
            repository_domain(repository), ()
        )
