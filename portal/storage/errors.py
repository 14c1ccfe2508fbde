"""Typed storage errors: a message for the person, a separate one for the log.

They are provider errors on purpose: a user's storage is prepared while the reconciler launches
a machine, and the reconciler already knows what to do with each kind — postpone the launch
while the storage service is unreachable (:class:`StorageUnavailable`), fail the machine with
the person's message otherwise. In a web request (the bootstrap exchange) the one error handler
answers them like any PortalError: 503 makes the VM's agent try again.
"""

from __future__ import annotations

from daaas.portal.providers.errors import CapacityExhausted, ProviderError, ProviderUnavailable


class StorageError(ProviderError):
    """The user's storage cannot be prepared; the message says what to do next."""

    code = "storage_error"


class StorageUnavailable(ProviderUnavailable):
    """The storage service (Manila, the export) cannot be reached right now; retried later."""

    code = "storage_unavailable"


class StorageQuotaExceeded(CapacityExhausted):
    """The cloud's quota of shares or of share space is used up: no new storage can be made."""

    code = "storage_quota_exceeded"
