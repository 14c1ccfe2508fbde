"""Contextualisation: turn one session's Context into what its machine needs at boot.

Public API::

    context_from_parts(user, machine_id, environment, site, *, bootstrap_token, mounts) -> Context
    render_user_data(ctx) -> bytes          # #cloud-config, gzip-compressed when large
    build_cloud_config(ctx) -> dict         # the same as data
    bootstrap_document(ctx) -> dict         # /etc/daaas/bootstrap.json for the agent
"""

from daaas.contextualisation.account import UserAccount
from daaas.contextualisation.bootstrap import AGENT_SOURCE, VNC_PORT, bootstrap_document
from daaas.contextualisation.builder import context_from_parts
from daaas.contextualisation.context import AccessServices, Context, HpcSettings
from daaas.contextualisation.errors import ContextualisationError, InvalidContext, UserDataTooLarge
from daaas.contextualisation.launchers import Launcher
from daaas.contextualisation.mounts import Mount
from daaas.contextualisation.render import (
    NOVA_USER_DATA_LIMIT,
    build_cloud_config,
    dump_cloud_config,
    render_user_data,
)

__all__ = [
    "AGENT_SOURCE",
    "NOVA_USER_DATA_LIMIT",
    "VNC_PORT",
    "AccessServices",
    "Context",
    "ContextualisationError",
    "HpcSettings",
    "InvalidContext",
    "Launcher",
    "Mount",
    "UserAccount",
    "UserDataTooLarge",
    "bootstrap_document",
    "build_cloud_config",
    "context_from_parts",
    "dump_cloud_config",
    "render_user_data",
]
