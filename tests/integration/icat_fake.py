"""A fake ICAT server: a real HTTP server on 127.0.0.1 that answers like ICAT's REST interface.

It mirrors icat.server's ``ICATRest`` as its javadoc (published as the "ICAT Server REST
interface" pages) and code document it, in the 5.x source the adapter follows (see
:mod:`daaas.portal.experiments.icat_client`):

- ``POST /icat/session`` with form field ``json`` = ``{"plugin": …, "credentials": [{"username":
  …}, {"password": …}]}`` answers ``{"sessionId": "<uuid>"}``;
- ``PUT /icat/session/<sessionId>`` refreshes (204, no body);
- ``GET /icat/entityManager?sessionId=…&query=…`` answers a list of entities, each wrapped by its
  type name, related entities (only those named in INCLUDE) as plain objects inside it, every
  entity with id/createId/createTime/modId/modTime, dates as ``yyyy-MM-dd'T'HH:mm:ss.SSSXXX``;
- errors are ``{"code": …, "message": …}`` with the status of the code: SESSION 403 (also an
  unknown or expired session, whose message names the session id, as ICAT's does),
  BAD_PARAMETER 400, INTERNAL 500.

Queries are read with ICAT's lexical rules (string literals in single quotes, a quote inside
doubled) and only the shapes the portal sends are understood: a WHERE clause of exactly
``<path> = <literal>``; anything else is refused with BAD_PARAMETER, as a real ICAT refuses
what it cannot parse. Every request is recorded.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

STATUS = {"SESSION": 403, "INSUFFICIENT_PRIVILEGES": 403, "BAD_PARAMETER": 400,
          "NO_SUCH_OBJECT_FOUND": 404, "INTERNAL": 500}
_TOKEN = re.compile(r"\s*(?:(?P<string>'(?:[^']|'')*')|(?P<int>\d+)|(?P<name>[A-Za-z_$][\w.$]*)"
                    r"|(?P<op><>|!=|>=|<=|[=<>(),]))")


@dataclass(frozen=True)
class Recorded:
    """One request as the fake received it."""

    method: str
    path: str
    args: dict[str, str]
    form: dict[str, str]


@dataclass
class Account:
    """The reader account the fake accepts."""

    plugin: str = "simple"
    username: str = "daaas-reader"
    password: str = "s3cret-reader-pw"


@dataclass
class FakeIcat:
    """ICAT with some investigations; ``scientists`` maps an instrument name to user names."""

    investigations: list[dict[str, Any]]
    scientists: dict[str, list[str]] = field(default_factory=dict)
    account: Account = field(default_factory=Account)
    requests: list[Recorded] = field(default_factory=list)
    sessions: set[str] = field(default_factory=set)
    failing: int | None = None
    delay: float = 0.0
    url: str = ""

    def start(self) -> str:
        """Serve on a free port of 127.0.0.1 in a thread; returns the base URL."""
        self._server = make_server("127.0.0.1", 0, self._wsgi, threaded=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        return self.url

    def stop(self) -> None:
        """Stop serving (the port then refuses connections)."""
        self._server.shutdown()
        self._server.server_close()

    def expire_sessions(self) -> None:
        """Forget every session, as ICAT does when they time out."""
        self.sessions.clear()

    def searches(self) -> list[str]:
        """Return the query text of every entityManager search, in order."""
        return [r.args["query"] for r in self.requests if r.path == "/icat/entityManager"]

    def calls(self, method: str, prefix: str) -> list[Recorded]:
        """Return the recorded requests of ``method`` whose path starts with ``prefix``."""
        return [r for r in self.requests if r.method == method and r.path.startswith(prefix)]

    def _wsgi(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        self.requests.append(Recorded(request.method, request.path, dict(request.args),
                                      dict(request.form)))
        time.sleep(self.delay)
        return self._answer(request)(environ, start_response)

    def _answer(self, request: Request) -> Response:
        if self.failing is not None:
            return _error("INTERNAL", "Internal Exception Description: database is down",
                          self.failing)
        if request.path == "/icat/session" and request.method == "POST":
            return self._login(request.form.get("json", ""))
        if request.path.startswith("/icat/session/") and request.method == "PUT":
            session_id = request.path.rsplit("/", 1)[1]
            return Response(status=204) if session_id in self.sessions else _no_session(
                session_id)
        if request.path == "/icat/entityManager" and request.method == "GET":
            session_id = request.args.get("sessionId", "")
            if session_id not in self.sessions:
                return _no_session(session_id)
            return self._search(request.args.get("query", ""))
        return Response("Not Found", status=404)

    def _login(self, body: str) -> Response:
        asked = json.loads(body)
        credentials = {k: v for item in asked.get("credentials", []) for k, v in item.items()}
        if asked.get("plugin") != self.account.plugin:
            return _error("SESSION", f"Authenticator mnemonic {asked.get('plugin')} not "
                          "recognised")
        if credentials != {"username": self.account.username,
                           "password": self.account.password}:
            return _error("SESSION", "The username and password do not match")
        session_id = str(uuid.uuid4())
        self.sessions.add(session_id)
        return _json({"sessionId": session_id})

    def _search(self, query: str) -> Response:
        try:
            clause = parse_query(query)
        except ValueError as exc:
            return _error("BAD_PARAMETER", str(exc))
        path, value = clause["where"]
        if path.endswith(".id"):
            rows = [i for i in self.investigations if i["id"] == value]
        elif "instrumentScientists" in clause["from"]:
            rows = [i for i in self.investigations if any(
                value in self.scientists.get(ii["instrument"]["name"], [])
                for ii in i["investigationInstruments"])]
        else:
            rows = [i for i in self.investigations if any(
                u["user"]["name"] == value for u in i["investigationUsers"])]
        return _json([{"Investigation": _render(row, clause["include"])} for row in rows])


def parse_query(query: str) -> dict[str, Any]:
    """Return the FROM text, the WHERE ``(path, literal)`` and the INCLUDE paths of a query.

    Raises ValueError (ICAT: BAD_PARAMETER) for text ICAT's lexer refuses or a WHERE clause
    that is not exactly ``<path> = <literal>``.
    """
    tokens = tokenize(query)
    words = [t[1].upper() if t[0] == "name" else None for t in tokens]
    if not tokens or words[0] != "SELECT" or "WHERE" not in words:
        raise ValueError(f"fake ICAT: expected SELECT … WHERE … in: {query}")
    where = words.index("WHERE")
    end = words.index("INCLUDE") if "INCLUDE" in words else len(tokens)
    condition = tokens[where + 1:end]
    kinds = [kind for kind, _ in condition]
    if kinds not in (["name", "op", "string"], ["name", "op", "int"]) or condition[1][1] != "=":
        raise ValueError(f"fake ICAT understands only WHERE <path> = <literal>, got: "
                         f"{' '.join(text for _, text in condition)}")
    kind, literal = condition[2]
    value: str | int = int(literal) if kind == "int" else literal[1:-1].replace("''", "'")
    paths = [text for kind, text in tokens[end + 1:] if kind == "name"]
    return {"from": " ".join(text for _, text in tokens[:where]),
            "where": (condition[0][1], value), "include": included(paths)}


def tokenize(query: str) -> list[tuple[str, str]]:
    """Split a query as ICAT's lexer does; raises ValueError like ICAT's LexerException."""
    tokens, at = [], 0
    while query[at:].strip():
        match = _TOKEN.match(query, at)
        if not match:
            raise ValueError(f"Unexpected character '{query[at:].strip()[0]}' or end of string "
                             f"in state INQUOTES for string: {query}")
        kind = match.lastgroup or ""
        tokens.append((kind, match.group(kind)))
        at = match.end()
    return tokens


def included(paths: list[str]) -> set[str]:
    """Return every relationship an INCLUDE list loads: ``i.a.b`` loads ``a`` and ``a.b``."""
    loaded: set[str] = set()
    for path in paths:
        steps = path.split(".")[1:]
        loaded.update(".".join(steps[:n]) for n in range(1, len(steps) + 1))
    return loaded


def _render(row: dict[str, Any], include: set[str], prefix: str = "") -> dict[str, Any]:
    rendered: dict[str, Any] = {}
    for key, value in row.items():
        where = prefix + key
        if isinstance(value, dict):
            if where in include:
                rendered[key] = _render(value, include, where + ".")
        elif isinstance(value, list):
            if where in include:
                rendered[key] = [_render(v, include, where + ".") for v in value]
        elif value is not None:
            rendered[key] = value
    return rendered


def entity(entity_id: int, **fields: Any) -> dict[str, Any]:
    """An entity as ICAT writes it: the bean's audit fields, then its own fields."""
    return {"id": entity_id, "createId": "simple/root", "createTime": "2026-01-05T10:00:00.000Z",
            "modId": "simple/root", "modTime": "2026-01-05T10:00:00.000Z", **fields}


def closed_port_url() -> str:
    """Return an http URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def _json(body: object, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def _error(code: str, message: str, status: int | None = None) -> Response:
    return _json({"code": code, "message": message}, status or STATUS[code])


def _no_session(session_id: str) -> Response:
    return _error("SESSION", f"Unable to find user by sessionid: {session_id}")
