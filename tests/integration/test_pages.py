"""Server-rendered pages: catalogue cards per user, the admin catalogue with invalid entries,
and a broken catalogue that never takes the portal down."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from daaas.portal import create_app
from daaas.portal.config import DEFAULT_CATALOGUE_DIR
from tests.support.web import sign_in


def _cards(page: str) -> set[str]:
    return set(re.findall(r'data-environment="([^"]+)"', page))


def test_analysis_page_shows_only_what_the_user_may_use(client: FlaskClient) -> None:
    sign_in(client, "neutron", "neutron-demo")
    neutron = _cards(client.get("/analysis").get_data(as_text=True))
    client.post("/sign-out", data={"csrf_token": _csrf(client)})
    sign_in(client, "scientist", "scientist-demo")
    page = client.get("/analysis").get_data(as_text=True)
    scientist = _cards(page)
    assert neutron and scientist and neutron != scientist
    assert "mantid" in neutron and "mantid" not in scientist
    assert "ccp4" in scientist and "ccp4" not in neutron


def test_cards_show_title_gpu_badge_and_applications(client: FlaskClient) -> None:
    sign_in(client, "admin", "admin-demo-pass")
    page = client.get("/analysis").get_data(as_text=True)
    assert 'class="badge gpu"' in page
    assert "Coot" in page and "Mantid Workbench" in page
    icon = re.search(r'<img src="(/catalogue/icons/[^"]+)"', page)
    assert icon and client.get(icon.group(1)).status_code == 200


def test_admin_page_is_for_admins_only(client: FlaskClient) -> None:
    sign_in(client, "scientist", "scientist-demo")
    response = client.get("/admin/catalogue")
    assert response.status_code == 403
    assert "Only administrators" in response.get_data(as_text=True)


def _csrf(client: FlaskClient) -> str:
    from tests.support.web import csrf_from

    return csrf_from(client, "/analysis")


BROKEN = {
    "no-image.yaml": "name: no-image\ntitle: No image\ndescription: x\n",
    "wrong-type.yaml": ("name: wrong-type\ntitle: Wrong type\nextends: base-desktop\n"
                        "description: x\nlimits:\n  max_lifetime_hours: forever\n"),
    "orphan.yaml": "name: orphan\ntitle: Orphan\nextends: no-such-parent\ndescription: x\n",
    "loop-a.yaml": "name: loop-a\ntitle: A\nextends: loop-b\ndescription: x\n",
    "loop-b.yaml": "name: loop-b\ntitle: B\nextends: loop-a\ndescription: x\n",
    "bad-yaml.yaml": "name: bad-yaml\ntitle: [unclosed\n",
}


def broken_catalogue(tmp_path: Path) -> Path:
    """A copy of the shipped catalogue plus one file for each kind of mistake."""
    directory = tmp_path / "environments"
    shutil.copytree(DEFAULT_CATALOGUE_DIR, directory)
    for name, text in BROKEN.items():
        (directory / name).write_text(text)
    return directory


def test_broken_entries_are_left_out_and_shown_to_admins(tmp_path: Path,
                                                         settings_override: dict[str, Any]) -> None:
    app = create_app({**settings_override, "catalogue_dir": str(broken_catalogue(tmp_path))})
    client = app.test_client()
    sign_in(client, "admin", "admin-demo-pass")
    cards = _cards(client.get("/analysis").get_data(as_text=True))
    assert "ccp4" in cards and not cards & {"no-image", "wrong-type", "orphan", "loop-a"}
    page = client.get("/admin/catalogue").get_data(as_text=True)
    invalid = set(re.findall(r'<tr class="invalid" data-entry="([^"]+)"', page))
    assert {"no-image", "wrong-type", "orphan", "loop-a", "loop-b", "bad-yaml"} <= invalid
    assert "no-such-parent" in page and "max_lifetime_hours" in page
    assert "loop-a -&gt; loop-b -&gt; loop-a" in page or "loop-b -&gt; loop-a -&gt; loop-b" in page


def test_admins_are_told_when_desktops_are_not_isolated(
        settings_override: dict[str, Any]) -> None:
    """What the provider says about itself (a non-root local portal: single-user mode or
    refused launches) is on the admin's machines page, and only there."""
    app = create_app({**settings_override, "provider": "unisolated"})
    client = app.test_client()
    sign_in(client, "admin", "admin-demo-pass")
    page = client.get("/admin/machines").get_data(as_text=True)
    assert re.search(r'data-notice="provider">\s*Local desktops run in single-user mode', page)
    user = app.test_client()
    sign_in(user, "scientist", "scientist-demo")
    assert "single-user mode" not in user.get("/analysis").get_data(as_text=True)
