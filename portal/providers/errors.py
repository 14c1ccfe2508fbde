"""Typed provider errors: a message for the person, a separate one for the log.

Every provider translates its backend's exceptions (a cloud SDK's, a subprocess's) into one of
these at its boundary, so the reconciler and the views never see a raw library exception. They
are :class:`daaas.portal.errors.PortalError` subclasses, so the portal's one error handler answers
them.
"""

from __future__ import annotations

from collections.abc import Iterable

from daaas.portal.errors import PortalError


class ProviderError(PortalError):
    """Base class: the provider could not do what was asked.

    ``user_message`` says what went wrong and what to do next; ``log_message`` may carry details
    (process output, cloud request ids) a user must not see. Neither ever holds a password.
    """

    status_code = 502
    code = "provider_error"


class CapacityExhausted(ProviderError):
    """No room for another machine (session slots, GPUs, quota); trying later may work."""

    status_code = 503
    code = "capacity_exhausted"


class LaunchFailed(ProviderError):
    """The machine could not be started; the message says why."""

    status_code = 502
    code = "launch_failed"


class MachineGone(ProviderError):
    """The machine does not exist at the provider (never launched, deleted, or lost)."""

    status_code = 404
    code = "machine_gone"


class StopNotSupported(ProviderError):
    """This kind of machine cannot be stopped and started again (the provider has no way)."""

    status_code = 409
    code = "stop_not_supported"

    def __init__(self, provider: str, machine_id: str = "") -> None:
        super().__init__("This kind of machine cannot be stopped; delete it instead when you no "
                         "longer need it (your storage is kept).",
                         f"{provider}: stop/start of {machine_id or 'a machine'} not supported")


class ProviderUnavailable(ProviderError):
    """The provider itself cannot be used right now (cloud down, host misconfigured)."""

    status_code = 503
    code = "provider_unavailable"


class MissingSystemPackages(ProviderUnavailable):
    """Programs the provider needs are not installed; names the Debian packages to install."""

    code = "missing_system_packages"

    def __init__(self, programs: Iterable[str], packages: Iterable[str]) -> None:
        self.programs = list(dict.fromkeys(programs))
        self.packages = list(dict.fromkeys(packages))
        message = (
            f"Desktops cannot be started on this server: {', '.join(self.programs)} not found. "
            f"Install them with: apt-get install {' '.join(self.packages)}"
        )
        super().__init__(message)
