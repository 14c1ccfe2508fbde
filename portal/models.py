"""Imports every domain's models so that Alembic and create_all see the whole schema."""

import portal.experiments.models  # noqa: F401  (the ICAT-core tables)
from portal.auth.models import ApiToken, SignInAttempt, User
from portal.context.models import MachineContext
from portal.db import Base
from portal.hpc.models import HpcJob
from portal.machines.models import AccessToken, Machine, MachineEvent
from portal.storage.models import AppPassword

__all__ = ["AccessToken", "ApiToken", "AppPassword", "Base", "HpcJob", "Machine",
           "MachineContext", "MachineEvent", "SignInAttempt", "User"]
