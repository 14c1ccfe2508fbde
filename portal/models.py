"""Imports every domain's models so that Alembic and create_all see the whole schema."""

from portal.auth.models import ApiToken, SignInAttempt, User
from portal.db import Base

__all__ = ["ApiToken", "Base", "SignInAttempt", "User"]
