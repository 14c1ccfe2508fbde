"""Bodies of the account and catalogue routes of /api/v1 (see :mod:`daaas.portal.api.schema`)."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from daaas.catalogue.model import Environment
from daaas.portal.api.schema import Body, Reply, Timestamp


class User(Reply):
    """The signed-in user."""

    username: str
    display_name: str
    email: str
    uid: int
    gid: int
    is_admin: bool
    groups: list[str]
    instruments: list[str]


class Catalogue(Reply):
    """The environments the user may launch."""

    environments: list[Environment]


class Problem(Reply):
    """One problem of an invalid catalogue entry."""

    path: str
    field: str | None
    message: str
    text: str = Field(description="The problem as one line: file, field and message.")


class InvalidEntry(Reply):
    """A catalogue entry that cannot be launched, and why."""

    entry: str
    problems: list[Problem]


class AdminCatalogue(Reply):
    """Every catalogue entry's validity (admins)."""

    directory: str
    valid: list[str]
    invalid: list[InvalidEntry]


class TokenRequest(Body):
    """What to call a new personal API token (an empty body: ``api``)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "laptop"}]})

    name: str = Field("api", min_length=1, max_length=100)


class Token(Reply):
    """A new personal API token; the secret is shown this once."""

    name: str
    token: str
    expires_at: Timestamp


REQUESTS = (TokenRequest,)
REPLIES = (User, Catalogue, Environment, AdminCatalogue, Token)
