"""The session owner's POSIX account as the VM creates it."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

from daaas.contextualisation.validation import FROZEN, POSIX_NAME_RE, check_user_path

_SSH_KEY_RE = re.compile(r"^(ssh-|ecdsa-|sk-)[a-z0-9@.-]+ [A-Za-z0-9+/=]+( [^\r\n\0]*)?$")


class UserAccount(BaseModel):
    """The user's account: names, ids and ssh keys; never a password (the agent sets it).

    Invalid values raise pydantic.ValidationError.
    """

    model_config = FROZEN
    username: str
    uid: int = Field(ge=1000, le=2**31 - 1)
    gid: int = Field(ge=1000, le=2**31 - 1)
    full_name: str = ""
    ssh_public_keys: tuple[str, ...] = ()
    group: str = Field(default="", description="Primary group name; default: the username.")
    home: str = Field(default="", description="Home folder; default: /home/<username>.")
    groups: tuple[str, ...] = Field(default=(), description="More groups, created if missing.")
    sudo: bool = False

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("username"), str):
            data = {**data, "group": data.get("group") or data["username"]}
            data["home"] = data.get("home") or f"/home/{data['username']}"
        return data

    @field_validator("username", "group")
    @classmethod
    def _name(cls, value: str) -> str:
        if not POSIX_NAME_RE.match(value):
            raise ValueError(f"'{value}' is not a valid POSIX user or group name")
        return value

    @field_validator("groups")
    @classmethod
    def _groups(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(cls._name(group) for group in value)

    @field_validator("home")
    @classmethod
    def _home(cls, value: str) -> str:
        return check_user_path(value, "home folder")

    @field_validator("ssh_public_keys")
    @classmethod
    def _keys(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        keys = tuple(key.strip() for key in value if key.strip())
        for key in keys:
            if not _SSH_KEY_RE.match(key):
                raise ValueError(f"'{key[:40]}' is not a one-line OpenSSH public key")
        return keys
