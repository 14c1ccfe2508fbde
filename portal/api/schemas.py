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
    """What to call a new personal API token and how long it lives (an empty body: ``api``,
    the portal's default lifetime)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"name": "laptop", "lifetime_days": 30}]})

    name: str = Field("api", min_length=1, max_length=100,
                      description="What the token is for; printable characters only.")
    lifetime_days: int | None = Field(
        None, ge=1, le=3650, description="Days until it expires; default and maximum are the "
        "portal's settings (a longer life than its maximum is refused with 400).")


class Token(Reply):
    """A new personal API token; the secret is shown this once."""

    id: int
    name: str
    token: str
    prefix: str = Field(description="The secret's first characters, as listings show it.")
    created_at: Timestamp
    expires_at: Timestamp


class TokenInfo(Reply):
    """One of the user's API tokens as listed: never the secret."""

    id: int
    name: str
    prefix: str = Field(description="The secret's first characters, to tell tokens apart.")
    created_at: Timestamp
    last_used_at: Timestamp | None
    expires_at: Timestamp
    expired: bool


class TokenList(Reply):
    """The user's API tokens, newest first (expired ones too, until revoked)."""

    tokens: list[TokenInfo]


REQUESTS = (TokenRequest,)
REPLIES = (User, Catalogue, Environment, AdminCatalogue, Token, TokenList)
