"""A small client for ICAT's REST interface: log in, keep the session fresh, search.

Requests and answers follow icat.server's REST interface as its javadoc documents it (the
"ICAT Server REST interface" pages published with each release are generated from
``src/main/java/org/icatproject/exposed/ICATRest.java``). Followed here: the 5.x source
(icat.server commit 0736483), whose endpoints and shapes match the 4.x one (63730f6); the 6.x
(jakarta) error mapper is unchanged. ``POST /icat/session`` with form field ``json``, ``PUT
/icat/session/<sessionId>`` to refresh, ``GET /icat/entityManager?sessionId=…&query=…`` to
search. Errors come as ``{"code": "SESSION", "message": …}`` (``IcatExceptionMapper``) with
the HTTP status of the code (``IcatException.IcatExceptionType``: SESSION and
INSUFFICIENT_PRIVILEGES 403, NO_SUCH_OBJECT_FOUND 404, BAD_PARAMETER 400, INTERNAL 500).
Every failure becomes :class:`ExperimentsUnavailable`; log messages never carry the password
or a session id.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import requests

from daaas.portal.experiments.errors import ExperimentsUnavailable
from daaas.portal.experiments.icat_credentials import IcatCredentials

REFRESH_AFTER_SECONDS = 600.0  # ICAT sessions last lifetimeMinutes (default 120) from refresh
_SECRETS = re.compile(r"(sessionId=)[^&\s'\"]+|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-"
                      r"[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class _SessionExpired(Exception):
    """ICAT answered 403 SESSION: the session id is unknown or expired."""


class IcatClient:
    """One ICAT session for the portal's reader account, shared by all threads."""

    def __init__(self, url: str, credentials: IcatCredentials, timeout: float = 10.0,
                 verify: bool = True, clock: Callable[[], float] = time.monotonic) -> None:
        self.base = url.rstrip("/") + "/icat"
        self.credentials, self.timeout, self.clock = credentials, timeout, clock
        self._http = requests.Session()
        self._http.verify = verify
        self._lock = threading.Lock()
        self._session_id: str | None = None
        self._fresh_at = 0.0

    def search(self, query: str) -> list[Any]:
        """Return ICAT's answer to ``query``: entities wrapped by their type name.

        Logs in on first use, refreshes an old session, and logs in again once when ICAT says
        the session expired. Raises ExperimentsUnavailable for any failure.
        """
        session_id = self._session()
        try:
            found = self._search(session_id, query)
        except _SessionExpired:
            try:
                found = self._search(self._session(stale=session_id), query)
            except _SessionExpired as again:
                raise ExperimentsUnavailable(f"ICAT at {self.base} refused a new session at "
                                             f"once: {again}") from None
        if not isinstance(found, list):
            raise ExperimentsUnavailable(f"ICAT at {self.base} answered a search with "
                                         f"{type(found).__name__}, not a list")
        return found

    def _search(self, session_id: str, query: str) -> Any:
        response = self._call("GET", "/entityManager", "search",
                              params={"sessionId": session_id, "query": query})
        return self._json(response, "search")

    def _session(self, stale: str | None = None) -> str:
        with self._lock:
            now = self.clock()
            if self._session_id is None or self._session_id == stale:
                self._session_id = self._login()
            elif now - self._fresh_at > REFRESH_AFTER_SECONDS:
                try:
                    self._call("PUT", f"/session/{self._session_id}", "session refresh")
                except _SessionExpired:
                    self._session_id = self._login()
            self._fresh_at = now
            return self._session_id

    def _login(self) -> str:
        creds = self.credentials
        try:
            answer = self._json(self._call("POST", "/session", "login",
                                           data={"json": creds.login_json()}), "login")
        except _SessionExpired as refused:
            raise ExperimentsUnavailable(
                f"ICAT at {self.base} refused the reader account {creds.username!r} (plugin "
                f"{creds.plugin!r}): {refused}; check icat_credentials_file") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("sessionId"), str):
            raise ExperimentsUnavailable(f"ICAT at {self.base} answered login without a "
                                         "sessionId")
        return str(answer["sessionId"])

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> requests.Response:
        try:
            response = self._http.request(method, self.base + path, timeout=self.timeout,
                                          **kwargs)
        except requests.Timeout:
            raise ExperimentsUnavailable(f"ICAT at {self.base} did not answer the {what} "
                                         f"within {self.timeout:g} s") from None
        except requests.RequestException as exc:
            raise ExperimentsUnavailable(f"ICAT at {self.base} cannot be reached ({what}): "
                                         f"{self._clean(exc)}") from None
        if response.ok:
            return response
        code, message = _error_of(response)
        if response.status_code == 403 and code == "SESSION":
            raise _SessionExpired(self._clean(message))
        raise ExperimentsUnavailable(f"ICAT at {self.base} answered the {what} with HTTP "
                                     f"{response.status_code} {code}: {self._clean(message)}")

    def _json(self, response: requests.Response, what: str) -> Any:
        try:
            return response.json()
        except ValueError:
            raise ExperimentsUnavailable(f"ICAT at {self.base} answered the {what} with "
                                         "something that is not JSON") from None

    def _clean(self, text: object) -> str:
        cleaned = _SECRETS.sub(lambda m: (m.group(1) or "") + "***", str(text))
        for secret in (self._session_id, self.credentials.password):
            if secret:
                cleaned = cleaned.replace(secret, "***")
        return cleaned[:500]


def _error_of(response: requests.Response) -> tuple[str, str]:
    """Return ICAT's error code and message, or the HTTP reason for a body that is not one."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and "code" in body:
        return str(body["code"]), str(body.get("message", ""))
    return "(no ICAT error)", response.reason or ""
