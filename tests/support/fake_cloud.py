"""An OpenStack cloud faked at the HTTP edge for openstacksdk: a JSON request handler to
subclass, and a server on 127.0.0.1 with a clouds.yaml pointing openstacksdk at it."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

#: clouds.yaml keys of the services a fake serves, by the path prefix it answers under.
ENDPOINTS = {"compute": "compute_endpoint_override: {base}/compute/v2.1",
             "image": "image_endpoint_override: {base}/image/",
             "network": "network_endpoint_override: {base}/network/"}


class JsonHandler(BaseHTTPRequestHandler):
    """Answers JSON; a subclass routes every GET, POST and DELETE in ``_route(method)``."""

    def log_message(self, *args: Any) -> None:
        return

    def _answer(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _request(self) -> tuple[str, dict[str, str], Any]:
        """Return the request's path (no trailing /), its query (the first value of each
        name) and its JSON body ({} when there is none)."""
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        return (url.path.rstrip("/"), {k: v[0] for k, v in parse_qs(url.query).items()},
                json.loads(self.rfile.read(length)) if length else {})

    def _versions(self, service: str) -> None:
        """Answer the version discovery of ``service`` under its prefix: "compute" (Nova
        v2.1, microversions up to 2.90), "network" (Neutron v2.0) or "image" (Glance v2.15),
        linked on this server."""
        base = f"http://{self.headers['Host']}"
        if service == "compute":
            self._answer(200, {"version": {"id": "v2.1", "status": "CURRENT", "version": "2.90",
                                           "min_version": "2.1",
                                           "updated": "2013-07-23T11:33:21Z", "links": [
                                               {"rel": "self", "href": f"{base}/compute/v2.1/"}]}})
            return
        version, folder = ("v2.0", "v2.0") if service == "network" else ("v2.15", "v2")
        self._answer(200, {"versions": [{"id": version, "status": "CURRENT", "links": [
            {"rel": "self", "href": f"{base}/{service}/{folder}/"}]}]})

    def _route(self, method: str) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")


@contextmanager
def fake_cloud(handler: type[JsonHandler], state: Any, tmp_path: Path,
               monkeypatch: pytest.MonkeyPatch, services: tuple[str, ...]) -> Iterator[str]:
    """Serve ``handler`` (its ``cloud`` attribute set to ``state``) as cloud "fake" of a new
    clouds.yaml named by OS_CLIENT_CONFIG_FILE; yield its base URL. ``services``: keys of
    :data:`ENDPOINTS`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("H", (handler,), {"cloud": state}))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    clouds = tmp_path / "clouds.yaml"
    overrides = "".join(f"    {ENDPOINTS[name].format(base=base)}\n" for name in services)
    clouds.write_text(
        "clouds:\n  fake:\n    auth_type: none\n    auth:\n"
        f"      endpoint: {base}/compute/v2.1\n{overrides}"
        "    region_name: RegionOne\n", encoding="utf-8")
    monkeypatch.setenv("OS_CLIENT_CONFIG_FILE", str(clouds))  # openstacksdk's own variable
    try:
        yield base
    finally:
        server.shutdown()
        server.server_close()
