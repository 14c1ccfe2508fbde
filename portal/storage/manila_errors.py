"""Manila (openstacksdk/keystoneauth) exceptions → typed storage errors, and the Connection.

The one place where Manila's exceptions become :mod:`daaas.portal.storage.errors`; the person's
message says what to do, the log's keeps Manila's own words and request id.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import openstack
from keystoneauth1 import exceptions as ksa_exc
from openstack import exceptions as os_exc

from daaas.portal.providers.errors import ProviderError
from daaas.portal.providers.openstack.cloud import describe
from daaas.portal.storage.errors import StorageError, StorageQuotaExceeded, StorageUnavailable

UNREACHABLE = ("The storage service of the cloud (Manila) cannot be reached right now, so your "
               "storage cannot be attached. The portal keeps trying; if your machine fails, "
               "launch it again later and tell the facility's support if it persists.")
QUOTA = ("Your storage could not be created: the cloud's quota for shared file systems "
         "(Manila shares or their total size) is used up. Nothing was lost; tell the "
         "facility's support so they can raise the quota, then launch again.")
REFUSED = ("The cloud's storage service (Manila) refused to prepare your storage: {why}. Tell "
           "the facility's support; launching again will not help until they fix it.")
ERROR_SHARE = ("Your storage share on the cloud is in an error state, so it cannot be "
               "attached. Your data is not deleted; tell the facility's support.")
NO_KEY_YET = ("Your storage is not ready yet; the machine keeps asking. If it does not start, "
              "launch it again in a few minutes.")
CREDENTIALS = ("The portal's cloud credentials for storage were refused. Tell the portal "
               "administrators (check clouds.yaml and storage_manila_cloud).")


def openstack_connection(cloud: str) -> Any:
    """Return an openstacksdk Connection for the clouds.yaml entry ``cloud``.

    Raises StorageError when no cloud is named or it cannot be configured.
    """
    if not cloud:
        raise StorageError(CREDENTIALS, "storage_backend manila needs storage_manila_cloud or "
                                        "openstack_cloud (a clouds.yaml entry)")
    try:
        return openstack.connect(cloud=cloud, app_name="daaas")
    except (os_exc.SDKException, KeyError) as error:
        raise StorageError(CREDENTIALS, f"manila: cloud {cloud!r}: {error}") from None


def translate(error: BaseException, action: str) -> ProviderError:
    """Return the typed storage error for an exception raised while doing ``action``."""
    log = f"manila: {action}: {describe(error)}"
    status = getattr(error, "status_code", None)
    text = f"{error} {getattr(error, 'details', '') or ''}".lower()
    if isinstance(error, ksa_exc.ConnectFailure | ksa_exc.ConnectTimeout | ksa_exc.DiscoveryFailure
                  | ksa_exc.EndpointNotFound) or (status is not None and status >= 500):
        return StorageUnavailable(UNREACHABLE, log)
    if isinstance(error, ksa_exc.Unauthorized) or status == 401:
        return StorageUnavailable(CREDENTIALS, log)
    if status == 413 or "quota" in text or "exceeded" in text:
        return StorageQuotaExceeded(QUOTA, log)
    details = str(getattr(error, "details", "") or error).strip().splitlines() or ["unknown"]
    return StorageError(REFUSED.format(why=details[0][:300]), log)


@contextmanager
def manila_call(action: str) -> Iterator[None]:
    """Run the block, turning openstacksdk/keystoneauth exceptions into storage errors."""
    try:
        yield
    except (os_exc.SDKException, ksa_exc.ClientException) as error:
        raise translate(error, action) from None
