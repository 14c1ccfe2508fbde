"""Bodies of the sharing routes of /api/v1 (see :mod:`daaas.portal.api.schema`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from daaas.portal.api.schema import Body, Reply, Timestamp


class InviteRequest(Body):
    """Share the desktop with an account, or change that member's role."""

    model_config = ConfigDict(strict=True, frozen=True,
                              json_schema_extra={"examples": [{"username": "neutron",
                                                               "role": "viewer"}]})
    username: str = Field(min_length=1, max_length=64, description="The account's username.")
    role: Literal["user", "viewer"] = Field(description="user: full control of the desktop "
                                            "(cannot delete, extend or share); viewer: sees "
                                            "it, input dropped.")


class LinkRequest(Body):
    """Make a share link."""

    model_config = ConfigDict(strict=True, frozen=True,
                              json_schema_extra={"examples": [{"kind": "invite",
                                                               "role": "user"}]})
    kind: Literal["invite", "view"] = Field(description="invite: one use, expiring, makes the "
                                            "first account that opens it a member; view: "
                                            "view-only while the owner is connected.")
    role: Literal["user", "viewer"] = Field("viewer", description="An invitation's role "
                                            "(a view link is always viewer).")


class PolicyRequest(Body):
    """What happens to the others when the owner leaves."""

    model_config = ConfigDict(strict=True, frozen=True,
                              json_schema_extra={"examples": [{"owner_away": "view_only"}]})
    owner_away: Literal["stay", "view_only", "disconnect"] = Field(
        description="stay; view_only (lock the room); disconnect.")


class MachineMember(Reply):
    """A member of a shared machine."""

    username: str
    display_name: str
    role: str = Field(description="user or viewer.")
    since: Timestamp


class Connected(Reply):
    """An open desktop connection."""

    id: int = Field(description="DELETE /machines/{id}/connections/{this} ends it.")
    username: str
    display_name: str
    role: str = Field(description="owner, user or viewer (now: the owner away may lock it).")
    via_link: bool = Field(description="Opened through a view-only link.")
    since: Timestamp


class Link(Reply):
    """A share link that still works (its secret is shown only when it is made)."""

    id: int
    kind: str = Field(description="invite or view.")
    role: str
    created_at: Timestamp
    expires_at: Timestamp | None = Field(description="An invitation's end; null for a view "
                                                     "link (it lives while the owner is "
                                                     "connected).")


class NewLink(Link):
    """A share link just made, with its address (shown only now)."""

    url: str = Field(description="Send this address; it opens the invitation or the "
                                 "view-only desktop.")


class SupportRequest(Reply):
    """An administrator's pending request for access to the desktop."""

    id: int = Field(description="POST .../support-requests/{this}/accept, or DELETE to refuse.")
    username: str
    display_name: str
    created_at: Timestamp


class Suggested(Reply):
    """A member of the machine's experiment who has an account here."""

    username: str
    display_name: str


class SuggestionList(Reply):
    """Whom the owner might share with: the other members of the machine's experiment."""

    experiment: str = Field(description="The experiment's visit; empty when the machine has "
                                        "none or the catalogue cannot be reached.")
    users: list[Suggested]


class Sharing(Reply):
    """Who a machine is shared with and who is on its desktop now, as the caller may see it."""

    role: str = Field(description="The caller's role: owner, user or viewer.")
    owner: str = Field(description="The owner's username.")
    owner_away: str | None = Field(description="stay, view_only or disconnect (owner only).")
    members: list[MachineMember]
    connected: list[Connected]
    links: list[Link] = Field(description="Working links (owner only; else empty).")
    support_requests: list[SupportRequest] = Field(
        description="Administrators asking for access (owner only; else empty).")


class SharedMachine(Reply):
    """A machine someone shared with the caller."""

    machine_id: str
    name: str
    owner: str
    role: str
    state: str
    desktop_url: str


class SharedList(Reply):
    """The machines shared with the caller, newest share first."""

    machines: list[SharedMachine]


REQUESTS: tuple[type[BaseModel], ...] = (InviteRequest, LinkRequest, PolicyRequest)
REPLIES = (Sharing, MachineMember, Connected, Link, NewLink, SharedMachine, SharedList,
           SupportRequest, Suggested, SuggestionList)
