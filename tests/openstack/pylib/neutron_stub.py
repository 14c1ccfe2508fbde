"""Minimal stand-in for Neutron on 127.0.0.1:9696 (used because real neutron-server is not run).
nova-api calls GET /v2.0/ports?device_id=... for security groups on every server show/list,
and nova-compute lists ports on delete; with networks='none' empty lists are enough."""
import json
import re
from wsgiref.simple_server import WSGIRequestHandler, make_server


def app(environ, start_response):
    path, method = environ["PATH_INFO"].rstrip("/"), environ["REQUEST_METHOD"]
    m = re.match(r"^/v2\.0/([a-z_-]+)(?:\.json)?$", path)
    if method == "GET" and path in ("", "/v2.0"):
        body = {"resources": []}
    elif method == "GET" and m:
        body = {m.group(1).replace("-", "_"): []}
    else:
        start_response("404 Not Found", [("Content-Type", "application/json")])
        return [b'{"NeutronError": {"type": "NotFound", "message": "stub", "detail": ""}}']
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(body).encode()]

class Quiet(WSGIRequestHandler):
    def log_message(self, *a): pass

if __name__ == "__main__":
    make_server("127.0.0.1", 9696, app, handler_class=Quiet).serve_forever()
