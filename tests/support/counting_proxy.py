"""A forwarding HTTP proxy that counts what passes: put it in front of a real service
(slurmrestd, ICAT) to count the requests the portal makes at the HTTP edge, without faking the
service's answers."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate", "host", "content-length"}


class CountingProxy:
    """Where the proxy listens (``url``) and every request it forwarded ("METHOD /path")."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.requests: list[str] = []
        self.url = ""


def _handler(proxy: CountingProxy) -> type[BaseHTTPRequestHandler]:
    class Forward(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def _forward(self) -> None:
            proxy.requests.append(f"{self.command} {self.path}")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            request = urllib.request.Request(proxy.upstream + self.path, data=body,
                                             headers=headers, method=self.command)
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    status, reply, items = answer.status, answer.read(), answer.headers.items()
            except urllib.error.HTTPError as error:
                status, reply, items = error.code, error.read(), error.headers.items()
            self.send_response(status)
            for key, value in items:
                if key.lower() not in HOP_BY_HOP:
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        do_GET = do_POST = do_DELETE = do_PUT = _forward

    return Forward


@contextmanager
def counting_proxy(upstream: str) -> Iterator[CountingProxy]:
    """Serve a :class:`CountingProxy` to ``upstream`` on 127.0.0.1 while the block runs."""
    proxy = CountingProxy(upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    proxy.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
