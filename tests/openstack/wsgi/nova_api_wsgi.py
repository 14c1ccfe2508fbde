"""gunicorn entry for nova: oslo.config parses sys.argv, so hide gunicorn's own arguments."""

import sys

sys.argv = sys.argv[:1]

from nova.wsgi.osapi_compute import application  # noqa: E402

__all__ = ["application"]
