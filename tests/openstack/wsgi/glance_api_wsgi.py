"""gunicorn entry for glance: oslo.config parses sys.argv, so hide gunicorn's own arguments."""

import sys

sys.argv = sys.argv[:1]

from glance.wsgi.api import application  # noqa: E402

__all__ = ["application"]
