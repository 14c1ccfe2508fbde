"""Query and reply of the audit API (``GET /api/v1/admin/audit``); the page reads the same
query."""

from __future__ import annotations

from pydantic import Field, field_validator

from daaas.portal.api.schema import Day, Query, Reply, Timestamp
from daaas.portal.audit.models import MAX_ACTION, MAX_ACTOR, MAX_TARGET

#: The most events one answer holds (the CSV export holds all that match).
MAX_LIMIT = 5000


class AuditQuery(Query):
    """Which events: every filter left empty means "any"; days are UTC and inclusive."""

    actor: str = Field("", max_length=MAX_ACTOR, description="Exactly this actor (a user "
                       "name, or cli:<login> for the command line).")
    action: str = Field("", max_length=MAX_ACTION, description="Exactly this action, e.g. "
                        "machine.delete.")
    target: str = Field("", max_length=MAX_TARGET, description="Targets containing this "
                        "text, e.g. a machine id.")
    since: Day | None = Field(None, description="From this day on (YYYY-MM-DD).")
    until: Day | None = Field(None, description="Up to and including this day.")
    limit: int = Field(500, ge=1, le=MAX_LIMIT, description="Events in the answer, newest "
                       "first.")

    @field_validator("since", "until", mode="before")
    @classmethod
    def _empty_is_any(cls, value: object) -> object:
        """An empty day (the page's form sends its empty date fields) means any."""
        return None if value == "" else value


class AuditEventReply(Reply):
    """One audited action."""

    id: int
    at: Timestamp
    actor: str = Field(description="Who: a user name, cli:<login> or worker.")
    action: str = Field(description="What, e.g. sign_in, machine.launch, desktop.open.")
    target: str = Field(description="To what, e.g. 'machine <id>', 'user <name>'.")
    detail: str
    source: str = Field(description="From where: the client's address, cli or worker.")
    admin: bool = Field(description="An administrator acting on what is not theirs.")


class AuditList(Reply):
    """The events matching the query, newest first."""

    events: list[AuditEventReply]
    limit: int


REQUESTS: tuple[type[Query], ...] = ()
REPLIES = (AuditEventReply, AuditList)
