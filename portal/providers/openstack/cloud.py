"""What the portal's OpenStack backends share: the marks on the portal's cloud resources, and
the translation of cloud exceptions into typed provider errors.

Used by the Nova provider (:mod:`.provider`) and the Manila storage backend
(:mod:`daaas.portal.storage.manila`). Servers and shares carry the tag ``machine_tag(id)`` and
metadata under the ``*_KEY`` names, so a restarted worker finds what it created.

This is the one place where openstacksdk/keystoneauth exceptions become
:mod:`daaas.portal.providers.errors`. Every log message passes through :func:`redact` first:
Nova echoes the whole user_data back in a 400 ("Invalid input for field/attribute user_data.
Value: <all of it>"), and user_data carries a bootstrap token.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from keystoneauth1 import exceptions as ksa_exc
from openstack import exceptions as os_exc

from daaas.portal.providers.errors import (
    CapacityExhausted,
    LaunchFailed,
    ProviderError,
    ProviderUnavailable,
)

MACHINE_KEY = "daaas_machine_id"
OWNER_KEY = "daaas_owner"
GPU_KEY = "daaas_gpu"
MACHINE_TAG_PREFIX = "daaas-machine-"

NO_GPU = "No GPU is free right now; try again later or choose a CPU environment."
NO_HOST = ("No cloud host has room for this machine size right now; choose a smaller flavor "
           "or try again later.")
QUOTA = ("Your project's quota on the cloud is used up ({what}). Delete a machine you no "
         "longer need, or ask the cloud administrators for more quota.")
UNREACHABLE = ("The cloud cannot be reached right now. Try again in a few minutes; if it "
               "persists, tell the portal administrators.")
BAD_USER_DATA = ("The start-up configuration of this machine was refused by the cloud (too "
                 "large or malformed). Tell the portal administrators; retrying will not help.")
REDACTED = "<user_data redacted>"
_ECHO = re.compile(r"(user_data\.?\s*Value:\s*).*", re.IGNORECASE | re.DOTALL)
_QUOTA_WHAT = re.compile(r"Quota exceeded for (?:resources: \[([^\]]*)\]|([a-z_, ]+?)[:.])",
                         re.IGNORECASE)  # Neutron names a list of resources, Nova a phrase


def machine_tag(machine_id: str) -> str:
    """Return the tag naming one machine's cloud resources (Nova tags: at most 60 characters)."""
    return f"{MACHINE_TAG_PREFIX}{machine_id}"[:60]


def machine_id_of(server: Any) -> str | None:
    """Return the portal machine id a server carries in its metadata, or None."""
    metadata = getattr(server, "metadata", None) or {}
    value = metadata.get(MACHINE_KEY)
    return str(value) if value else None


def redact(text: str, secrets: Iterable[str | None] = ()) -> str:
    """Return ``text`` with every given secret and any echoed user_data value replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, REDACTED)
    return _ECHO.sub(lambda m: m.group(1) + REDACTED, text)


def describe(error: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """Return a redacted one-line log description of a cloud exception."""
    details = getattr(error, "details", None) or ""
    request_id = getattr(error, "request_id", None)
    text = f"{type(error).__name__}: {error} {details}".strip()
    if request_id:
        text += f" (request {request_id})"
    return redact(text, secrets)


def translate(error: BaseException, action: str, secrets: Iterable[str | None] = ()) -> \
        ProviderError:
    """Return the typed provider error for a cloud exception raised while doing ``action``.

    ``action`` names what was attempted ("launch abc123"); ``secrets`` are strings that must
    never reach the log (the user_data in its sent form). Never raises.
    """
    secrets = list(secrets)
    log = f"openstack: {action}: {describe(error, secrets)}"
    status = getattr(error, "status_code", None)
    message = redact(f"{error} {getattr(error, 'details', '') or ''}", secrets)
    if isinstance(error, ksa_exc.ConnectFailure | ksa_exc.ConnectTimeout | ksa_exc.DiscoveryFailure
                  | ksa_exc.EndpointNotFound) or (status is not None and status >= 500):
        return ProviderUnavailable(UNREACHABLE, log)
    if isinstance(error, ksa_exc.Unauthorized) or status == 401:
        return ProviderUnavailable("The portal's cloud credentials were refused. Tell the portal "
                                   "administrators (check clouds.yaml).", log)
    if status in (403, 409) and "quota exceeded" in message.lower():  # Nova 403, Neutron 409
        found = _QUOTA_WHAT.search(message)
        what = (found.group(1) or found.group(2)).replace("'", "") if found else "resources"
        return CapacityExhausted(QUOTA.format(what=what.strip()), log)
    if status == 400 and "user_data" in message:
        return LaunchFailed(BAD_USER_DATA, log)
    if isinstance(error, os_exc.SDKException):
        return LaunchFailed(f"The cloud refused to {action.split(' ')[0]} the machine: "
                            f"{_first_line(message)}", log)
    return ProviderError("The cloud failed unexpectedly; try again later.", log)


def fault_message(fault: dict[str, object] | None, gpu: bool) -> tuple[str, str]:
    """Return (message for the person, log message) for a server in ERROR with this fault."""
    text = str((fault or {}).get("message") or "no fault recorded").strip()
    log = f"nova fault: {redact(text)} (code {(fault or {}).get('code')})"
    if "no valid host" in text.lower():
        return (NO_GPU if gpu else NO_HOST), log
    return f"The cloud could not start the machine: {_first_line(redact(text))}", log


@contextmanager
def translated(action: str, secrets: Iterable[str | None] = ()) -> Iterator[None]:
    """Run the block, turning any openstacksdk or keystoneauth exception into a ProviderError."""
    try:
        yield
    except ProviderError:
        raise
    except (os_exc.SDKException, ksa_exc.ClientException) as error:
        raise translate(error, action, secrets) from None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return line[:300]
