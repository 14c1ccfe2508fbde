"""The ICAT experiment backend against a fake ICAT that answers over real HTTP like ICAT's REST
interface (tests/integration/icat_fake.py): login, queries, mapping, session expiry and refresh,
outages, the per-user cache, credentials file, and the portal configured with it."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from daaas.portal import create_app
from daaas.portal.config import ConfigError
from daaas.portal.errors import NotFound
from daaas.portal.experiments.backends import Member
from daaas.portal.experiments.errors import NOT_READ_YET, UNAVAILABLE, ExperimentsUnavailable
from daaas.portal.experiments.icat import IcatExperiments
from daaas.portal.experiments.icat_client import REFRESH_AFTER_SECONDS, IcatClient
from daaas.portal.experiments.icat_credentials import IcatCredentials, read_credentials
from tests.integration.icat_fake import Account, FakeIcat, closed_port_url, entity, parse_query
from tests.support.web import bearer, csrf_from, sign_in

ACCOUNT = Account()
NOW = datetime.now(UTC).replace(microsecond=0)
DLS = entity(1, name="DLS", fullName="Diamond Light Source")
MX_ID, OLD_ID, WISH_ID, DARCY_ID = 4101, 4102, 4103, 4104


@pytest.fixture
def settings_override(settings_override: dict[str, Any]) -> dict[str, Any]:
    """The conftest's settings on the in-memory provider: these tests launch environments
    (CCP4, Mantid) whose software a local desktop on this host lacks, and the local provider
    refuses those launches (Provider.unavailable_reason)."""
    return {**settings_override, "provider": "memory"}


def icat_date(moment: datetime, offset_hours: int = 0) -> str:
    """A date as ICAT writes it (yyyy-MM-dd'T'HH:mm:ss.SSSXXX) in a zone ``offset_hours`` east."""
    local = moment.astimezone(UTC) + timedelta(hours=offset_hours)
    zone = "Z" if not offset_hours else f"+{offset_hours:02d}:00"
    return f"{local:%Y-%m-%dT%H:%M:%S}.000{zone}"


def person(entity_id: int, name: str, full_name: str, role: str) -> dict[str, Any]:
    return entity(entity_id + 500, role=role, user=entity(entity_id, name=name, fullName=full_name))


def instrument(entity_id: int, name: str) -> dict[str, Any]:
    return entity(entity_id + 700, instrument=entity(entity_id, name=name, fullName=name))


def investigation(entity_id: int, visit: str, title: str, start: datetime, days: int,
                  instruments: list[dict[str, Any]], users: list[dict[str, Any]],
                  locations: tuple[str, ...] = (), offset_hours: int = 0) -> dict[str, Any]:
    return entity(entity_id, name=visit.split("-")[0], visitId=visit, title=title,
                  startDate=icat_date(start, offset_hours),
                  endDate=icat_date(start + timedelta(days=days), offset_hours),
                  facility=DLS, investigationInstruments=instruments, investigationUsers=users,
                  datasets=[entity(entity_id * 10 + n, name=Path(loc).name, location=loc)
                            for n, loc in enumerate(locations)])


def icat_investigations() -> list[dict[str, Any]]:
    mx = investigation(MX_ID, "MX40001-1", "ICAT: soaks of a membrane transporter",
                       NOW - timedelta(days=2), 7, [instrument(3, "I03")],
                       [person(11, "scientist", "Dr Ada Crystal", "principal_experimenter"),
                        person(12, "student", "Sam Student", "experimenter")],
                       ("/dls/i03/data/2026/mx40001-1/xtal1", "/dls/i03/data/2026/mx40001-1/xtal2"))
    old = investigation(OLD_ID, "MG40002-1", "ICAT: battery tomography",
                        NOW - timedelta(days=90), 3, [instrument(4, "I12")],
                        [person(11, "scientist", "Dr Ada Crystal", "experimenter")],
                        offset_hours=1)
    wish = investigation(WISH_ID, "RB40003-1", "ICAT: kagome magnet", NOW - timedelta(days=1),
                         3, [instrument(5, "WISH")],
                         [person(13, "neutron", "Dr Ben Neutron", "principal_experimenter")])
    darcy = investigation(DARCY_ID, "MX40004-1", "ICAT: quoted names", NOW, 2,
                          [instrument(3, "I03")],
                          [person(14, "d'arcy", "Jo D'Arcy", "experimenter")])
    return [mx, old, wish, darcy]


@pytest.fixture
def fake() -> Iterator[FakeIcat]:
    server = FakeIcat(icat_investigations(), scientists={"I03": ["admin"]})
    server.start()
    yield server
    server.stop()


def backend(url: str, cache_seconds: float = 0, timeout: float = 5.0,
            password: str = ACCOUNT.password, clock: Any = None) -> IcatExperiments:
    creds = IcatCredentials(ACCOUNT.plugin, ACCOUNT.username, password)
    client = IcatClient(url, creds, timeout=timeout, **({"clock": clock} if clock else {}))
    return IcatExperiments(client, cache_seconds=cache_seconds)


def test_login_sends_plugin_and_credentials_once(fake: FakeIcat) -> None:
    icat = backend(fake.url)
    icat.investigations_for("scientist")
    icat.investigations_for("neutron")
    logins = fake.calls("POST", "/icat/session")
    assert len(logins) == 1
    assert json.loads(logins[0].form["json"]) == {
        "plugin": "simple", "credentials": [{"username": "daaas-reader"},
                                            {"password": "s3cret-reader-pw"}]}
    sessions = {r.args["sessionId"] for r in fake.calls("GET", "/icat/entityManager")}
    assert len(sessions) == 1 and sessions <= fake.sessions


def test_user_queries_name_the_user_and_include_what_the_portal_needs(fake: FakeIcat) -> None:
    backend(fake.url).investigations_for("scientist")
    member, scientist = fake.searches()
    for query in (member, scientist):
        assert query.startswith("SELECT DISTINCT i FROM Investigation i JOIN ")
        assert "WHERE u.name = 'scientist' INCLUDE" in query
        assert query.endswith("INCLUDE i.facility, i.investigationInstruments.instrument, "
                              "i.investigationUsers.user, i.datasets")
    assert "JOIN i.investigationUsers AS iu JOIN iu.user AS u" in member
    assert ("JOIN i.investigationInstruments AS ii JOIN ii.instrument AS inst "
            "JOIN inst.instrumentScientists AS s JOIN s.user AS u") in scientist


def test_a_quote_in_a_user_name_stays_inside_the_string_literal(fake: FakeIcat) -> None:
    icat = backend(fake.url)
    assert [i.visit_id for i in icat.investigations_for("d'arcy")] == ["MX40004-1"]
    assert "WHERE u.name = 'd''arcy' INCLUDE" in fake.searches()[0]
    hostile = "x' OR u.name <> 'x"
    assert icat.investigations_for(hostile) == []
    for query in fake.searches()[2:]:
        assert parse_query(query)["where"] == ("u.name", hostile)


def test_investigations_map_to_investigation_info_current_first(fake: FakeIcat) -> None:
    mine = backend(fake.url).investigations_for("scientist")
    assert [i.visit_id for i in mine] == ["MX40001-1", "MG40002-1"]
    mx, old = mine
    assert (mx.id, mx.facility, mx.name, mx.title, mx.instruments) == (
        MX_ID, "DLS", "MX40001", "ICAT: soaks of a membrane transporter", ("I03",))
    assert mx.start_date == NOW - timedelta(days=2) and mx.end_date == NOW + timedelta(days=5)
    assert mx.is_current() and not old.is_current()
    assert mx.members == (Member("scientist", "Dr Ada Crystal", "principal_experimenter"),
                          Member("student", "Sam Student", "experimenter"))
    assert mx.data_path("/data/{visit_id}") == "/dls/i03/data/2026/mx40001-1"
    assert old.start_date == NOW - timedelta(days=90)  # written as +01:00, read as UTC
    assert old.start_date is not None and old.start_date.tzinfo is not None
    assert old.data_locations == () and old.data_path("/data/{visit_id}") == "/data/MG40002-1"


def test_instrument_scientist_sees_the_instruments_investigations(fake: FakeIcat) -> None:
    visits = [i.visit_id for i in backend(fake.url).investigations_for("admin")]
    assert sorted(visits) == ["MX40001-1", "MX40004-1"]


def test_get_one_and_not_found(fake: FakeIcat) -> None:
    icat = backend(fake.url)
    assert icat.get(WISH_ID).visit_id == "RB40003-1"
    assert fake.searches()[-1].startswith(f"SELECT i FROM Investigation i WHERE i.id = {WISH_ID}")
    with pytest.raises(NotFound):
        icat.get(999_999)


def test_non_member_may_not_use(fake: FakeIcat) -> None:
    icat = backend(fake.url)
    assert icat.may_use("scientist", MX_ID) is True
    assert icat.may_use("neutron", MX_ID) is False
    assert icat.may_use("nobody", WISH_ID) is False


def test_expired_session_logs_in_again_then_succeeds(fake: FakeIcat) -> None:
    icat = backend(fake.url)
    icat.investigations_for("neutron")
    fake.expire_sessions()
    assert [i.visit_id for i in icat.investigations_for("neutron")] == ["RB40003-1"]
    assert len(fake.calls("POST", "/icat/session")) == 2
    first, second = (r.args["sessionId"] for r in fake.calls("GET", "/icat/entityManager")[2:4])
    assert first != second and second in fake.sessions


def test_an_old_session_is_refreshed_and_replaced_when_refresh_is_refused(
        fake: FakeIcat) -> None:
    now = [1000.0]
    icat = backend(fake.url, clock=lambda: now[0])
    icat.investigations_for("neutron")
    session_id = fake.calls("GET", "/icat/entityManager")[0].args["sessionId"]
    now[0] += REFRESH_AFTER_SECONDS + 1
    icat.investigations_for("neutron")
    assert [r.path for r in fake.calls("PUT", "/icat/session/")] == [
        f"/icat/session/{session_id}"]
    fake.expire_sessions()
    now[0] += REFRESH_AFTER_SECONDS + 1
    assert icat.investigations_for("neutron")[0].visit_id == "RB40003-1"
    assert len(fake.calls("PUT", "/icat/session/")) == 2
    assert len(fake.calls("POST", "/icat/session")) == 2


def assert_unavailable(caught: pytest.ExceptionInfo[ExperimentsUnavailable],
                       *in_log: str) -> None:
    error = caught.value
    assert error.user_message == UNAVAILABLE == (
        "The experiment catalogue (ICAT) is not answering; you can still launch without an "
        "experiment.")
    assert error.status_code == 503 and error.code == "experiments_unavailable"
    for text in in_log:
        assert text in error.log_message
    assert ACCOUNT.password not in error.log_message


def test_server_error_is_unavailable(fake: FakeIcat) -> None:
    fake.failing = 500
    with pytest.raises(ExperimentsUnavailable) as caught:
        backend(fake.url).investigations_for("scientist")
    assert_unavailable(caught, fake.url, "HTTP 500 INTERNAL", "database is down")


def test_connection_refused_is_unavailable() -> None:
    url = closed_port_url()
    with pytest.raises(ExperimentsUnavailable) as caught:
        backend(url).investigations_for("scientist")
    assert_unavailable(caught, f"ICAT at {url}/icat cannot be reached (login)")


def test_timeout_is_unavailable(fake: FakeIcat) -> None:
    fake.delay = 1.0
    with pytest.raises(ExperimentsUnavailable) as caught:
        backend(fake.url, timeout=0.2).investigations_for("scientist")
    assert_unavailable(caught, "did not answer the login within 0.2 s")


def test_a_refused_reader_account_is_unavailable_and_named_in_the_log(fake: FakeIcat) -> None:
    with pytest.raises(ExperimentsUnavailable) as caught:
        backend(fake.url, password="wrong-password").investigations_for("scientist")
    assert_unavailable(caught, "refused the reader account 'daaas-reader' (plugin 'simple')",
                       "The username and password do not match", "icat_credentials_file")
    assert "wrong-password" not in caught.value.log_message


def test_the_session_id_never_reaches_the_log(fake: FakeIcat) -> None:
    icat = backend(fake.url)
    icat.investigations_for("scientist")
    session_id = next(iter(fake.sessions))
    fake.stop()
    with pytest.raises(ExperimentsUnavailable) as caught:
        icat.investigations_for("scientist")
    assert_unavailable(caught, "cannot be reached (search)")
    assert session_id not in caught.value.log_message
    fake.start()  # the fixture stops it again


def test_cache_hit_avoids_a_second_request(fake: FakeIcat) -> None:
    icat = backend(fake.url, cache_seconds=60)
    first = icat.investigations_for("scientist")
    asked = len(fake.requests)
    assert icat.investigations_for("scientist") == first
    assert icat.get(MX_ID) == first[0] and icat.may_use("scientist", MX_ID)
    assert len(fake.requests) == asked
    icat.investigations_for("neutron")  # the cache is per user
    assert len(fake.searches()) == 4


def test_threads_share_one_login_and_one_cached_answer(fake: FakeIcat) -> None:
    icat = backend(fake.url, cache_seconds=60)
    fake.delay = 0.05
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda _: icat.investigations_for("neutron"), range(16)))
    assert {tuple(i.visit_id for i in a) for a in answers} == {("RB40003-1",)}
    assert len(fake.calls("POST", "/icat/session")) == 1
    assert len(fake.sessions) == 1


def write_credentials(folder: Path, mode: int = 0o600, name: str = "icat.toml",
                      text: str | None = None) -> Path:
    path = folder / name
    path.write_text(text if text is not None else (
        f'plugin = "{ACCOUNT.plugin}"\nusername = "{ACCOUNT.username}"\n'
        f'password = "{ACCOUNT.password}"\n'), encoding="utf-8")
    os.chmod(path, mode)
    return path


def test_credentials_file_is_private_and_complete(tmp_path: Path) -> None:
    assert read_credentials(str(write_credentials(tmp_path))) == IcatCredentials(
        ACCOUNT.plugin, ACCOUNT.username, ACCOUNT.password)
    as_json = write_credentials(tmp_path, name="icat.json", text=json.dumps(
        {"plugin": "ldap", "username": "reader", "password": "pw"}))
    assert read_credentials(str(as_json)).plugin == "ldap"
    with pytest.raises(ConfigError, match=r"has mode 644.*chmod 600"):
        read_credentials(str(write_credentials(tmp_path, mode=0o644)))
    with pytest.raises(ConfigError, match="missing or empty: password"):
        read_credentials(str(write_credentials(tmp_path, text='plugin = "a"\nusername = "b"\n')))
    with pytest.raises(ConfigError, match=r"icat_credentials_file.*cannot read"):
        read_credentials(str(tmp_path / "absent.toml"))
    assert "s3cret" not in repr(read_credentials(str(write_credentials(tmp_path))))


def icat_settings(settings_override: dict[str, Any], url: str, folder: Path) -> dict[str, Any]:
    return {**settings_override, "experiments_backend": "icat", "icat_url": url,
            "icat_credentials_file": str(write_credentials(folder)), "icat_timeout_seconds": 2}


def test_icat_backend_needs_a_url_and_credentials(settings_override: dict[str, Any],
                                                  tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="icat_url"):
        create_app({**settings_override, "experiments_backend": "icat"})
    with pytest.raises(ConfigError, match="icat_credentials_file"):
        create_app({**settings_override, "experiments_backend": "icat",
                    "icat_url": "http://127.0.0.1:1"})


def test_analysis_page_lists_icat_investigations_and_binds_one(
        fake: FakeIcat, settings_override: dict[str, Any], tmp_path: Path) -> None:
    app = create_app(icat_settings(settings_override, fake.url, tmp_path))
    try:
        client = app.test_client()
        sign_in(client, "scientist", "scientist-demo")
        page = client.get("/analysis").get_data(as_text=True)
        assert f'<option value="{MX_ID}" selected>MX40001-1 (current)' in page
        assert f'<option value="{OLD_ID}" ' in page and "experiments-problem" not in page
        headers = bearer(app, "scientist")
        launched = client.post("/api/v1/machines", json={"environment": "ccp4",
                                                         "experiment": MX_ID}, headers=headers)
        assert launched.status_code == 202, launched.get_json()
        assert launched.get_json()["experiment"]["data_path"] == "/dls/i03/data/2026/mx40001-1"
        refused = client.post("/api/v1/machines", json={"environment": "mantid",
                                                        "experiment": MX_ID},
                              headers=bearer(app, "neutron"))
        assert refused.status_code == 403
    finally:
        app.extensions["daaas"].engine.dispose()


def test_with_icat_down_the_portal_works_without_experiments(
        settings_override: dict[str, Any], tmp_path: Path) -> None:
    app = create_app(icat_settings(settings_override, closed_port_url(), tmp_path))
    try:
        client: FlaskClient = app.test_client()
        sign_in(client, "scientist", "scientist-demo")
        page = client.get("/analysis")
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        # Nothing could be recorded at the sign-in: the page says so (no view asks ICAT).
        assert f'id="experiments-problem">{NOT_READ_YET}</p>' in html
        assert 'name="experiment"' not in html
        token = csrf_from(client, "/analysis")
        launched = client.post("/machines", data={"environment": "ccp4", "csrf_token": token})
        assert launched.status_code == 303 and "/machines/" in launched.headers["Location"]
        headers = bearer(app, "scientist")
        listed = client.get("/api/v1/experiments", headers=headers)
        assert listed.status_code == 503
        assert listed.get_json() == {"error": {"code": "experiments_not_read_yet",
                                               "message": NOT_READ_YET}}
        bound = client.post("/api/v1/machines", json={"environment": "ccp4", "experiment": 1},
                            headers=headers)
        assert bound.status_code == 503
        plain = client.post("/api/v1/machines", json={"environment": "ccp4"}, headers=headers)
        assert plain.status_code == 202
    finally:
        app.extensions["daaas"].engine.dispose()
