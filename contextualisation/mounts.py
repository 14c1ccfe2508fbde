"""Network file systems a session mounts: user storage (read-write), experiment data (read-only)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from daaas.contextualisation.validation import FROZEN, check_user_path

_OPTION_RE = re.compile(r"^[A-Za-z0-9_.=:/@+-]+$")
_SOURCE_RE = re.compile(r"^[A-Za-z0-9_.,\[\]:@-]+:/[A-Za-z0-9_./@+-]*$")
FSTYPES = {"nfs": "nfs", "cephfs": "ceph"}


class Mount(BaseModel):
    """One network file system and where it appears on the VM.

    Invalid values raise pydantic.ValidationError.
    """

    model_config = FROZEN
    kind: Literal["nfs", "cephfs"]
    source: str = Field(description="'server:/export' (nfs) or 'mon1,mon2:/path' (cephfs).")
    target: str
    read_only: bool = False
    options: tuple[str, ...] = Field(default=(), description="Extra options: 'vers=4.2'.")
    purpose: Literal["storage", "experiment", "other"] = "other"
    label: str = Field(default="", description="What it is, for the message of the day.")

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if not _SOURCE_RE.match(value):
            raise ValueError(f"source '{value}' must look like 'server:/path' without spaces")
        return value

    @field_validator("target")
    @classmethod
    def _target(cls, value: str) -> str:
        return check_user_path(value, "mount point")

    @field_validator("options")
    @classmethod
    def _options(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for option in value:
            if not _OPTION_RE.match(option) or option in ("ro", "rw"):
                raise ValueError(f"mount option '{option}' is invalid (read_only sets ro/rw)")
        return value

    @model_validator(mode="after")
    def _experiment_read_only(self) -> Mount:
        if self.purpose == "experiment" and not self.read_only:
            raise ValueError(f"experiment data at {self.target} must be mounted read-only")
        return self

    @property
    def fstab_options(self) -> str:
        """Return the fstab options: ro/rw first, the extra options, then _netdev and nofail.

        Raises nothing.
        """
        options = ("ro" if self.read_only else "rw", *self.options, "_netdev", "nofail")
        return ",".join(dict.fromkeys(options))
