"""Administrators' pages."""

from __future__ import annotations

from flask import Blueprint, render_template

from portal.auth.current import require_admin
from portal.runtime import runtime

blueprint = Blueprint("admin", __name__, url_prefix="/admin")


@blueprint.get("/catalogue")
def catalogue() -> str:
    """List every catalogue entry, valid or not, with the reasons an entry is invalid."""
    require_admin()
    cat = runtime().catalogue
    return render_template("admin/catalogue.html", catalogue=cat)
