"""The storage quota of a user through the quota service: their own quota's
``storage_gib``, else their groups' (most generous or summed), else ``storage_quota_gb``.

Storage is per person, never a pool: measuring a group's use would walk every member's storage.
The storage code (uploads, WebDAV, My Data, the desktop's "Storage use") calls
:func:`storage_quota_bytes`, which needs no session passed in.
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import inspect
from sqlalchemy.orm import Session, sessionmaker

from daaas.portal.auth.models import User
from daaas.portal.config import Settings
from daaas.portal.db import make_engine, make_session_factory, unit_of_work
from daaas.portal.quotas import rules
from daaas.portal.quotas.service import quotas_of

GIB = 1024**3


def storage_quota_gib(db: Session | None, settings: Settings, user: User) -> int:
    """Return the user's storage quota in GiB (:func:`rules.storage_gib`). Raises database
    errors only."""
    own, groups = quotas_of(db, settings, user)
    return rules.storage_gib(own, groups, settings.quota_policy, settings.storage_quota_gb)


def storage_quota_bytes(settings: Settings, user: User | None) -> int:
    """Return the user's storage quota in bytes (:func:`storage_quota_gib`), for the storage
    code, which has no session of its own: read in the session the user's row belongs to; for
    a row whose session has ended (WebDAV signs in with one of its own) in a short one of its
    own; for a user never stored, or None (nobody signed in), from the settings alone. Raises
    database errors only."""
    if user is None:
        return settings.storage_quota_gb * GIB
    state = inspect(user)
    if state.session is not None:
        return storage_quota_gib(state.session, settings, user) * GIB
    if not state.detached:
        return storage_quota_gib(None, settings, user) * GIB
    with unit_of_work(_sessions(settings.effective_database_url)) as db:
        return storage_quota_gib(db, settings, user) * GIB


@lru_cache(maxsize=4)
def _sessions(url: str) -> sessionmaker[Session]:
    """Sessions of an unpooled engine (no connection kept between uses)."""
    return make_session_factory(make_engine(url, pooled=False))
