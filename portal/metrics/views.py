"""``GET /metrics``: the Prometheus text exposition, for the scraper only.

Who may read it is the settings' ``metrics_token`` (a bearer token) and ``metrics_networks``
(source addresses); with both set both must hold. With neither set the endpoint is off and
answers 404 saying how to turn it on. Refusals are plain text, as a scraper shows them.
"""

from __future__ import annotations

import hmac
import ipaddress

from flask import Blueprint, Response, request

from daaas.portal.config import Settings, parse_networks
from daaas.portal.errors import Forbidden, NotFound, PortalError
from daaas.portal.metrics.collect import scrape
from daaas.portal.runtime import runtime

blueprint = Blueprint("metrics", __name__)
#: The classic text format (Prometheus 2 and 3 read it; the names need no UTF-8 escaping).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class MetricsOff(NotFound):
    """Neither a metrics token nor metrics networks are configured."""

    code = "metrics_off"


class MetricsTokenRequired(PortalError):
    """The scrape did not carry the configured bearer token."""

    status_code = 401
    code = "metrics_token_required"


class MetricsNetworkRefused(Forbidden):
    """The scrape came from an address outside ``metrics_networks``."""

    code = "metrics_network_refused"


def check_access(settings: Settings, address: str, authorization: str) -> None:
    """Return None when a scrape from ``address`` with this ``Authorization`` header may read
    the metrics. Raises MetricsOff (404) when neither setting is set, MetricsNetworkRefused
    (403) for an address outside ``metrics_networks``, MetricsTokenRequired (401) without the
    right bearer token."""
    if not settings.metrics_token and not settings.metrics_networks:
        raise MetricsOff("Metrics are off on this portal. An administrator turns them on with "
                         "the metrics_token or metrics_networks setting (docs/admin.md, "
                         "Metrics).")
    if settings.metrics_networks:
        try:
            source = ipaddress.ip_address(address)
        except ValueError:
            source = None
        if source is None or not any(source in net
                                     for net in parse_networks(settings.metrics_networks)):
            raise MetricsNetworkRefused(
                "This address may not read the metrics (metrics_networks).",
                f"metrics scrape from {address!r} outside metrics_networks")
    if settings.metrics_token:
        scheme, _, given = authorization.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode(), settings.metrics_token.encode()):
            raise MetricsTokenRequired("The metrics need the bearer token of the "
                                       "metrics_token setting.",
                                       f"metrics scrape from {address!r} without the token")


@blueprint.errorhandler(MetricsOff)
@blueprint.errorhandler(MetricsTokenRequired)
@blueprint.errorhandler(MetricsNetworkRefused)
def refused(exc: PortalError) -> Response:
    """Answer a refused scrape in plain text (a scraper shows the body as it is)."""
    response = Response(exc.user_message + "\n", status=exc.status_code,
                        mimetype="text/plain")
    if isinstance(exc, MetricsTokenRequired):
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
    return response


@blueprint.get("/metrics")
def metrics() -> Response:
    """Return every metric as Prometheus text, read from the database now."""
    rt = runtime()
    check_access(rt.settings, request.remote_addr or "", request.headers.get("Authorization",
                                                                             ""))
    with rt.engine.connect() as connection:
        body = scrape(connection, rt.settings, list(rt.catalogue.environments))
    response = Response(body, mimetype=None, content_type=CONTENT_TYPE)
    response.headers["Cache-Control"] = "no-store"
    return response
