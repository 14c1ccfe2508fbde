"""A Manila v2 API (and the one Nova call the NFS grant needs) on 127.0.0.1, for the storage tests.

Manila cannot run here, so the tests fake it at its HTTP edge only: a real HTTP server answering
the requests openstacksdk really sends, with the bodies, status codes and error envelopes of the
Manila API reference (https://docs.openstack.org/api-ref/shared-file-system/): version
discovery at ``/`` and ``/v2/``; ``POST /v2/shares`` (200, the share in ``creating``);
``GET /v2/shares/detail`` with the ``name`` filter; ``GET``/``DELETE /v2/shares/{id}``;
``GET /v2/shares/{id}/export_locations``; ``POST /v2/shares/{id}/action`` with
``allow_access`` / ``deny_access``; ``GET /v2/share-access-rules?share_id=`` (2.45+), where a
cephx rule shows its ``access_key`` once Manila applied it; the share quota answered as Manila
does, ``413 {"overLimit": {"code": 413, "message": "Maximum number of shares allowed (N)
exceeded"}}``. Nova: ``GET /compute/v2.1/servers/detail?tags=``.

Asynchronous work is modelled the way a client sees it: a new share is ``creating`` until the
next GET, a new rule ``queued_to_apply`` until the next listing.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_VERSION = "2.84"
CEPH_MONITORS = "192.0.2.11:6789,192.0.2.12:6789"
NFS_SERVER = "192.0.2.20"


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


class ManilaState:
    """What the fake cloud holds; tests read it to check what the portal did."""

    def __init__(self, max_shares: int = 50) -> None:
        self.max_shares = max_shares
        self.shares: dict[str, dict[str, Any]] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.servers: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.unavailable = False  # answer 503 as Manila's API behind its load balancer does
        self.lock = threading.Lock()

    def add_server(self, machine_tag: str, fixed_ip: str) -> None:
        """Pretend Nova runs a server tagged ``machine_tag`` with this fixed address."""
        self.servers.append({
            "id": str(uuid.uuid4()), "name": machine_tag, "status": "ACTIVE",
            "tags": ["daaas", machine_tag],
            "addresses": {"private": [{"version": 4, "addr": fixed_ip,
                                       "OS-EXT-IPS:type": "fixed"},
                                      {"version": 4, "addr": "203.0.113.9",
                                       "OS-EXT-IPS:type": "floating"}]}})

    def rules_of(self, share_id: str) -> list[dict[str, Any]]:
        return [rule for rule in self.rules.values() if rule["share_id"] == share_id]


class _Handler(BaseHTTPRequestHandler):
    state: ManilaState
    base: str

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        return

    # -- plumbing ------------------------------------------------------------------------------

    def _send(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Openstack-Request-Id", f"req-{uuid.uuid4()}")
        version = self.headers.get("X-OpenStack-Manila-API-Version")
        if version:
            self.send_header("X-OpenStack-Manila-API-Version", version)
        self.end_headers()
        self.wfile.write(data)

    def _fault(self, status: int, name: str, message: str) -> None:
        self._send(status, {name: {"code": status, "message": message}})

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        parts = [p for p in url.path.split("/") if p]
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        with self.state.lock:
            self.state.requests.append((method, self.path))
            if self.state.unavailable:
                self._fault(503, "serviceUnavailable", "Service Unavailable")
                return
            try:
                if parts[:1] == ["compute"]:
                    self._nova(method, parts[2:], query)
                else:
                    self._manila(method, parts, query)
            except KeyError:
                self._fault(404, "itemNotFound", "not found")

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    # -- Manila --------------------------------------------------------------------------------

    def _version(self) -> dict[str, Any]:
        return {"id": "v2.0", "status": "CURRENT", "version": MAX_VERSION,
                "min_version": "2.0", "updated": "2015-08-27T11:33:21Z",
                "links": [{"rel": "self", "href": f"{self.base}/v2/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.share+json;version=1"}]}

    def _manila(self, method: str, parts: list[str], query: dict[str, str]) -> None:
        if not parts or parts == ["v2"]:
            self._send(200, {"versions": [self._version()]})
            return
        if parts[0] != "v2":
            raise KeyError(parts[0])
        parts = parts[1:]
        if parts == ["shares"] and method == "POST":
            self._create_share(self._body()["share"])
        elif parts in (["shares"], ["shares", "detail"]) and method == "GET":
            found = [s for s in self.state.shares.values()
                     if all(str(s.get(k)) == v for k, v in query.items() if k in ("name",
                                                                                   "status"))]
            self._send(200, {"shares": found})
        elif len(parts) == 2 and parts[0] == "shares":
            self._one_share(method, parts[1])
        elif len(parts) == 3 and parts[0] == "shares" and parts[2] == "export_locations":
            self._send(200, {"export_locations": self.state.shares[parts[1]]["_exports"]})
        elif len(parts) == 3 and parts[0] == "shares" and parts[2] == "action":
            self._action(self.state.shares[parts[1]], self._body())
        elif parts == ["share-access-rules"] and method == "GET":
            rules = self.state.rules_of(query["share_id"])
            for rule in rules:  # Manila applied them in the meantime
                if rule["state"] == "queued_to_apply":
                    rule["state"] = "active"
                    if rule["access_type"] == "cephx":
                        rule["access_key"] = "AQ" + secrets.token_urlsafe(30) + "=="
            self._send(200, {"access_list": [self._public(r) for r in rules]})
        else:
            raise KeyError(self.path)

    @staticmethod
    def _public(item: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in item.items() if not k.startswith("_")}

    def _create_share(self, body: dict[str, Any]) -> None:
        if len(self.state.shares) >= self.state.max_shares:
            self._fault(413, "overLimit", "Maximum number of shares allowed "
                                          f"({self.state.max_shares}) exceeded")
            return
        share_id = str(uuid.uuid4())
        proto = body["share_proto"].upper()
        path = (f"{CEPH_MONITORS}:/volumes/_nogroup/{share_id}/{uuid.uuid4()}"
                if proto == "CEPHFS" else f"{NFS_SERVER}:/shares/share-{share_id}")
        share = {
            "id": share_id, "name": body.get("name"), "description": body.get("description"),
            "size": int(body["size"]), "share_proto": proto, "status": "creating",
            "share_type": body.get("share_type") or "default-type-id",
            "share_type_name": body.get("share_type") or "default",
            "share_network_id": body.get("share_network_id"),
            "metadata": dict(body.get("metadata") or {}), "is_public": False,
            "availability_zone": "nova", "created_at": _now(), "project_id": "p-daaas",
            "access_rules_status": "active", "has_replicas": False, "snapshot_support": True,
            "links": [{"rel": "self", "href": f"{self.base}/v2/shares/{share_id}"}],
            "_exports": [
                {"id": str(uuid.uuid4()), "path": "10.0.0.99:/admin-only", "preferred": False,
                 "is_admin_only": True, "share_instance_id": share_id},
                {"id": str(uuid.uuid4()), "path": path, "preferred": True,
                 "is_admin_only": False, "share_instance_id": share_id}],
        }
        self.state.shares[share_id] = share
        self._send(200, {"share": self._public(share)})

    def _one_share(self, method: str, share_id: str) -> None:
        share = self.state.shares[share_id]
        if method == "DELETE":
            share["status"] = "deleting"
            self._send(202)
            return
        if share["status"] == "creating":  # the back end finished in the meantime
            share["status"] = "available"
        self._send(200, {"share": self._public(share)})

    def _action(self, share: dict[str, Any], body: dict[str, Any]) -> None:
        if "allow_access" in body:
            self._allow(share, body["allow_access"])
        elif "deny_access" in body:
            self.state.rules.pop(body["deny_access"]["access_id"])
            self._send(202)
        else:
            self._fault(400, "badRequest", f"Invalid request body {sorted(body)}")

    def _allow(self, share: dict[str, Any], request: dict[str, Any]) -> None:
        kind, to = request["access_type"], request["access_to"]
        if kind not in ("ip", "cephx") or (kind == "cephx") != (share["share_proto"] == "CEPHFS"):
            self._fault(400, "badRequest", f"Invalid access type {kind} for this share")
            return
        if any(r["access_type"] == kind and r["access_to"] == to
               for r in self.state.rules_of(share["id"])):
            self._fault(400, "badRequest", f"Share access {kind}:{to} exists.")
            return
        rule = {"id": str(uuid.uuid4()), "share_id": share["id"], "access_type": kind,
                "access_to": to, "access_level": request.get("access_level", "rw"),
                "state": "queued_to_apply", "access_key": None, "created_at": _now(),
                "updated_at": None, "metadata": dict(request.get("metadata") or {})}
        self.state.rules[rule["id"]] = rule
        self._send(200, {"access": rule})

    # -- Nova ----------------------------------------------------------------------------------

    def _nova(self, method: str, parts: list[str], query: dict[str, str]) -> None:
        if not parts:
            self._send(200, {"version": {"id": "v2.1", "status": "CURRENT", "version": "2.90",
                                         "min_version": "2.1",
                                         "links": [{"rel": "self",
                                                    "href": f"{self.base}/compute/v2.1/"}]}})
        elif parts == ["servers", "detail"] and method == "GET":
            wanted = set(query.get("tags", "").split(",")) - {""}
            self._send(200, {"servers": [s for s in self.state.servers
                                         if wanted <= set(s["tags"])]})
        else:
            raise KeyError(self.path)


@contextmanager
def manila_cloud(directory: Path, max_shares: int = 50) -> Iterator[tuple[ManilaState, Path]]:
    """Run the fake on a free port; yield its state and a clouds.yaml with the cloud ``fake``
    (no Keystone: ``auth_type: none`` and endpoint overrides, as openstacksdk documents)."""
    state = ManilaState(max_shares)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    server.RequestHandlerClass = type("Handler", (_Handler,), {"state": state, "base": base})
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    clouds = directory / "clouds.yaml"
    clouds.write_text(
        "clouds:\n  fake:\n    auth_type: none\n    auth:\n"
        f"      endpoint: {base}/v2\n"
        f"    shared_file_system_endpoint_override: {base}/v2\n"
        f"    compute_endpoint_override: {base}/compute/v2.1\n"
        "    region_name: RegionOne\n", encoding="utf-8")
    try:
        yield state, clouds
    finally:
        server.shutdown()
        server.server_close()
