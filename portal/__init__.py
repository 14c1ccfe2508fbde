"""daaas portal: the Flask application, its domains and its command line.

Nothing is built at import time; call :func:`create_app`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def create_app(config_override: dict[str, Any] | None = None) -> Flask:
    """Build the portal application; see :func:`daaas.portal.app.create_app`."""
    from daaas.portal.app import create_app as factory

    return factory(config_override)
