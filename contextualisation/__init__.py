"""Contextualisation: turn one session's Context into what its machine needs at boot.

Public API::

    context_from_parts(user, machine_id, environment, site, *, bootstrap_token, mounts) -> Context
    render_user_data(ctx) -> bytes          # #cloud-config, gzip-compressed when large
    build_cloud_config(ctx) -> dict         # the same as data
    bootstrap_document(ctx) -> dict         # /etc/daaas/bootstrap.json for the agent
"""

from contextualisation.account import UserAccount
from contextualisation.bootstrap import AGENT_SOURCE, VNC_PORT, bootstrap_document
from contextualisation.builder import context_from_parts
from contextualisation.context import AccessServices, Context, HpcSettings
from contextualisation.errors import ContextualisationError, InvalidContext, UserDataTooLarge
from contextualisation.launchers import Launcher
from contextualisation.mounts import Mount
from contextualisation.render import (
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
