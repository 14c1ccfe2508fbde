"""The Context: everything one session's machine needs, computed once by the portal.

Frozen pydantic models, validated on construction so renderers can trust every field. The only
secret here is the single-use bootstrap token; VNC and RDP passwords and storage keys are handed
over later by the bootstrap exchange (see BOOTSTRAP_PROTOCOL.md).
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, field_validator, model_validator

from daaas.contextualisation.account import UserAccount
from daaas.contextualisation.launchers import Launcher
from daaas.contextualisation.mounts import Mount
from daaas.contextualisation.validation import (
    FROZEN,
    HOST_RE,
    check_identifier,
    check_path,
    check_url,
)
from daaas.cvmfs.settings import CvmfsClientSettings, validate_repository_name

_TOKEN_RE = re.compile(r"^[A-Za-z0-9._~-]+$")
_GEOMETRY_RE = re.compile(r"^[0-9]{3,5}x[0-9]{3,5}$")

__all__ = ["AccessServices", "Context", "HpcSettings", "Launcher", "Mount", "UserAccount"]


class HpcSettings(BaseModel):
    """Where the HPC cluster is (never credentials); all empty means no HPC client.

    Invalid values raise pydantic.ValidationError.
    """

    model_config = FROZEN
    cluster_name: str = ""
    slurmctld_host: str = Field(default="", description="host[:port] serving configless Slurm.")
    slurmrestd_url: str = ""

    @field_validator("cluster_name")
    @classmethod
    def _cluster(cls, value: str) -> str:
        return check_identifier(value, "cluster name") if value else value

    @field_validator("slurmctld_host")
    @classmethod
    def _host(cls, value: str) -> str:
        if value and not HOST_RE.match(value):
            raise ValueError(f"'{value}' is not a host name with an optional :port")
        return value

    @field_validator("slurmrestd_url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_url(value, "slurmrestd URL") if value else value

    @property
    def enabled(self) -> bool:
        """Return True when a cluster is configured. Raises nothing."""
        return bool(self.cluster_name or self.slurmctld_host or self.slurmrestd_url)


class AccessServices(BaseModel):
    """Which ways into the machine are switched on.

    Invalid values raise pydantic.ValidationError.
    """

    model_config = FROZEN
    vnc: bool = True
    xrdp: bool = False
    ssh: bool = False


class Context(BaseModel):
    """Everything one session needs; renderers turn it into cloud-init user-data and more.

    Invalid values raise pydantic.ValidationError.
    """

    model_config = FROZEN
    environment_name: str
    environment_title: str = ""
    user: UserAccount
    machine_id: str
    callback_url: str = Field(description="The portal's base URL as the VM reaches it.")
    bootstrap_token: str = Field(min_length=16, repr=False)
    mounts: tuple[Mount, ...] = ()
    cvmfs_repositories: tuple[str, ...] = ()
    cvmfs: CvmfsClientSettings = CvmfsClientSettings()
    launchers: tuple[Launcher, ...] = ()
    hpc: HpcSettings = HpcSettings()
    access: AccessServices = AccessServices()
    icon_dir: str = "/usr/share/daaas/icons"
    vnc_geometry: str = "1920x1080"

    @field_validator("environment_name", "machine_id")
    @classmethod
    def _identifier(cls, value: str) -> str:
        return check_identifier(value, "name or id")

    @field_validator("callback_url")
    @classmethod
    def _callback(cls, value: str) -> str:
        return check_url(value, "callback URL")

    @field_validator("bootstrap_token")
    @classmethod
    def _token(cls, value: str) -> str:
        if not _TOKEN_RE.match(value):
            raise ValueError("the bootstrap token must be URL-safe characters only")
        return value

    @field_validator("cvmfs_repositories")
    @classmethod
    def _repositories(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(validate_repository_name(name) for name in value))

    @field_validator("icon_dir")
    @classmethod
    def _icon_dir(cls, value: str) -> str:
        return check_path(value, "icon folder")

    @field_validator("vnc_geometry")
    @classmethod
    def _geometry(cls, value: str) -> str:
        if not _GEOMETRY_RE.match(value):
            raise ValueError(f"VNC geometry '{value}' must look like 1920x1080")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Context:
        targets = [mount.target for mount in self.mounts]
        if len(set(targets)) != len(targets):
            raise ValueError("two mounts share a mount point")
        needed = {launcher.repository for launcher in self.launchers}
        missing = needed - set(self.cvmfs_repositories)
        if missing:
            raise ValueError(f"applications need CVMFS repositories not listed: {sorted(missing)}")
        return self

    @property
    def title(self) -> str:
        """Return the environment's title, or its name when it has none. Raises nothing."""
        return self.environment_title.strip() or self.environment_name
