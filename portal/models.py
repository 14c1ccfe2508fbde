"""Imports every domain's models so that Alembic and create_all see the whole schema."""

from portal.auth.models import ApiToken, SignInAttempt, User
from portal.db import Base
from portal.machines.models import AccessToken, Machine, MachineEvent

__all__ = ["AccessToken", "ApiToken", "Base", "Machine", "MachineEvent", "SignInAttempt", "User"]
