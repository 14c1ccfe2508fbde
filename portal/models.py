"""Imports every domain's models so that Alembic and create_all see the whole schema."""

import daaas.portal.experiments.models  # noqa: F401  (the ICAT-core tables)
from daaas.portal.access.models import RdpSignIn
from daaas.portal.audit.models import AuditEvent
from daaas.portal.auth.models import ApiToken, SignInAttempt, User
from daaas.portal.bootstrap.models import MachineContext
from daaas.portal.db import Base
from daaas.portal.experiments.observed import ObservedExperiments, ObservedInvestigation
from daaas.portal.hpc.models import HpcJob, HpcObservation
from daaas.portal.machines.activity import MachineActivity
from daaas.portal.machines.extensions import ExtensionRequest
from daaas.portal.machines.homes import KeptHome
from daaas.portal.machines.models import AccessToken, Machine, MachineEvent
from daaas.portal.notifications.models import Notification
from daaas.portal.pools.models import PoolSetting
from daaas.portal.quotas.models import QuotaRow
from daaas.portal.sharing.models import (
    DesktopConnection,
    MachineMember,
    ShareLink,
    SharePolicy,
)
from daaas.portal.sshkeys.models import SshKey
from daaas.portal.storage.models import AppPassword

__all__ = ["AccessToken", "ApiToken", "AppPassword", "AuditEvent", "Base", "DesktopConnection",
           "ExtensionRequest", "HpcJob", "HpcObservation", "KeptHome", "Machine",
           "MachineActivity",
           "MachineContext", "MachineEvent",
           "MachineMember", "Notification", "ObservedExperiments", "ObservedInvestigation",
           "PoolSetting", "QuotaRow", "RdpSignIn", "ShareLink",
           "SharePolicy",
           "SignInAttempt",
           "SshKey", "User"]
