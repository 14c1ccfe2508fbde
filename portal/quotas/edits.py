"""Administrators' changes to quotas: set a user's or group's quota, or drop it (back to the
settings' entry, if any). Every change is audited in the same transaction."""

from __future__ import annotations

import json
from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from daaas.portal.audit.service import record
from daaas.portal.auth.models import User
from daaas.portal.config import QUOTA_KEYS
from daaas.portal.db import utcnow
from daaas.portal.errors import Forbidden, InvalidInput, NotFound
from daaas.portal.quotas.models import QuotaRow
from daaas.portal.quotas.service import row_limits

SCOPES = ("user", "group")
#: The largest number a limit may be.
MAX_LIMIT = 1_000_000
MAX_NAME = 100


def check_target(scope: str, name: str) -> None:
    """Refuse a scope other than user or group, or a name the settings could not hold.

    Raises NotFound for an unknown scope, InvalidInput for a bad name.
    """
    if scope not in SCOPES:
        raise NotFound("Quotas belong to a 'user' or a 'group'.")
    if not name or len(name) > MAX_NAME or not all(c.isalnum() or c in "_.@+-" for c in name):
        raise InvalidInput(f"'{name[:MAX_NAME]}' is not a user or group name (1 to {MAX_NAME} "
                           "letters, digits and _ . @ + -).")


def set_quota(db: Session, admin: User, scope: str, name: str,
              limits: Mapping[str, int | None], gpus: Mapping[str, int]) -> QuotaRow:
    """Set the quota of the user or group ``name`` (``scope``): each limit of
    :data:`QUOTA_KEYS` (None: this quota does not limit it) and the GPUs by model; returns
    the row, audited as ``quota.set``. Raises Forbidden for a non-administrator, NotFound or
    InvalidInput as :func:`check_target` does, InvalidInput for a limit out of range."""
    _require_admin(admin)
    check_target(scope, name)
    for key, value in [*limits.items(), *gpus.items()]:
        if value is not None and not 0 <= value <= MAX_LIMIT:
            raise InvalidInput(f"'{key}' must be a whole number from 0 to {MAX_LIMIT}.")
    row = _row(db, scope, name) or QuotaRow(scope=scope, name=name)
    before = row_limits(row) if row.id is not None else None
    for key in QUOTA_KEYS:
        setattr(row, key, limits.get(key))
    row.gpus = {model.strip(): count for model, count in gpus.items() if model.strip()}
    row.updated_at, row.updated_by = utcnow(), admin.username
    db.add(row)
    db.flush()
    record(db, "quota.set", actor=admin.username, target=f"{scope} {name}", admin=True,
           detail=f"{_text(before)} -> {_text(row_limits(row))}")
    return row


def drop_quota(db: Session, admin: User, scope: str, name: str) -> None:
    """Drop what an administrator set for ``name`` (the settings' entry applies again, if
    any), audited as ``quota.reset``. Raises Forbidden for a non-administrator, NotFound when
    no administrator set one."""
    _require_admin(admin)
    check_target(scope, name)
    row = _row(db, scope, name)
    if row is None:
        raise NotFound(f"No administrator has set a quota for {scope} '{name}'.")
    record(db, "quota.reset", actor=admin.username, target=f"{scope} {name}", admin=True,
           detail=f"{_text(row_limits(row))} -> settings")
    db.delete(row)
    db.flush()


def _row(db: Session, scope: str, name: str) -> QuotaRow | None:
    return db.scalar(select(QuotaRow).where(QuotaRow.scope == scope, QuotaRow.name == name))


def _require_admin(user: User) -> None:
    if not user.is_admin:
        raise Forbidden("Only administrators may change quotas.")


def _text(limits: Mapping[str, int] | None) -> str:
    return "none" if limits is None else json.dumps(dict(limits), sort_keys=True)
