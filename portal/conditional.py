"""Conditional GET for what the pages poll: an ETag of the body, and 304 when it is unchanged.

My machines asks for the user's machines every 2 seconds per open tab; the machine and job
pages poll theirs too. Each answer carries a strong ETag (a digest of its body) and
``Cache-Control: private, no-cache``, so the browser keeps the body, asks again with
``If-None-Match`` and gets an empty 304 while nothing changed. The ETag is computed from the
body the signed-in user gets, so it never lets one account's answer stand for another's.
"""

from __future__ import annotations

from flask import Flask, Response, request

#: The polled JSON endpoints that answer conditionally.
POLLED = frozenset({"machines_api.list_machines", "machines_api.get_machine",
                    "hpc_api.list_jobs", "hpc_api.get_job"})


def install(app: Flask) -> None:
    """Answer GETs of :data:`POLLED` endpoints conditionally on ``app``. Raises nothing."""
    app.after_request(_conditional)


def _conditional(response: Response) -> Response:
    if request.method not in ("GET", "HEAD") or request.endpoint not in POLLED \
            or response.status_code != 200 or response.direct_passthrough:
        return response
    response.headers.setdefault("Cache-Control", "private, no-cache")
    response.add_etag()
    response.make_conditional(request)  # in place: 304 and no body when the ETag matches
    return response
