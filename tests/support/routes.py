"""The portal's GET routes, and a route filled with values, for tests that visit every page."""

from __future__ import annotations

from flask import Flask


def get_routes(app: Flask) -> list[str]:
    """Return every GET rule of the portal, sorted."""
    return sorted({rule.rule for rule in app.url_map.iter_rules()
                   if "GET" in (rule.methods or set())})


def fill(rule: str, values: dict[str, str]) -> str | None:
    """Return ``rule`` with its parameters from ``values``, or None when one has no value."""
    url = rule
    while "<" in url:
        start, end = url.index("<"), url.index(">")
        name = url[start + 1:end].split(":")[-1]
        if name not in values:
            return None
        url = url[:start] + values[name] + url[end + 1:]
    return url
