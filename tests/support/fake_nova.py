"""A fake Nova at the HTTP edge holding many servers, paginated as Nova pages
``GET /servers/detail`` (``limit``, ``marker``, a ``next`` link while more follow), for the
OpenStack poll's test and benchmarks/scale.py. Serve it with
:func:`tests.support.fake_cloud.fake_cloud`.
"""

from __future__ import annotations

import uuid
from typing import Any

from daaas.portal.providers.openstack.cloud import MACHINE_KEY
from tests.support.fake_cloud import JsonHandler

STATUSES = ["ACTIVE", "BUILD", "SHELVED_OFFLOADED", "ERROR"]


class Nova:
    """The servers the fake holds (in id order, as Nova pages them) and the requests made:
    ``count`` servers tagged ``tag`` and 100 of another portal's."""

    def __init__(self, tag: str, count: int) -> None:
        self.servers: list[dict[str, Any]] = []
        for index in range(count + 100):
            self.servers.append({
                "id": f"{index:08d}-0000-0000-0000-000000000000",
                "status": STATUSES[index % len(STATUSES)], "OS-EXT-STS:task_state": None,
                "tags": [tag if index < count else "someone-else"],
                "metadata": {MACHINE_KEY: uuid.uuid5(uuid.NAMESPACE_OID, str(index)).hex},
                "fault": {"code": 500, "message": "No valid host was found."},
                "addresses": {}, "flavor": {"original_name": "m1.small"}, "name": "x"})
        self.requests: list[str] = []


class NovaHandler(JsonHandler):
    """Answers the compute versions and ``GET /servers/detail`` from its :class:`Nova`."""

    cloud: Nova

    def _route(self, method: str) -> None:
        path, query, _ = self._request()
        path = path.removeprefix("/compute/v2.1")
        self.cloud.requests.append(f"{method} {self.path}")
        if method == "GET" and path in ("", "/compute"):
            self._versions("compute")
        elif method == "GET" and path == "/servers/detail":
            tags = set(query.get("tags", "").split(",")) - {""}
            matching = [s for s in self.cloud.servers if tags <= set(s["tags"])]
            after = query.get("marker")
            if after:
                matching = [s for s in matching if s["id"] > after]
            limit = int(query.get("limit", "1000"))
            page, rest = matching[:limit], matching[limit:]
            links = [{"rel": "next", "href": "next"}] if rest else []
            self._answer(200, {"servers": page, "servers_links": links})
        else:
            self._answer(404, {"itemNotFound": {"code": 404, "message": "not here"}})
