"""The user's storage over WebDAV at /dav/, for mounting on their own computer.

WsgiDAV serves it beside the Flask app (a werkzeug DispatcherMiddleware). HTTP Basic
authentication takes an app password (:mod:`daaas.portal.storage.app_passwords`), never the sign-in
password; each request is then confined to that user's storage folder: the provider finds the
folder in the request, refuses paths that resolve outside it and refuses symlinks. A PUT that
would take the storage over its quota is answered 507 before anything is written.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wsgi import LimitedStream
from wsgidav.dav_error import (
    HTTP_FORBIDDEN,
    HTTP_INSUFFICIENT_STORAGE,
    DAVError,
)
from wsgidav.dc.base_dc import BaseDomainController
from wsgidav.dir_browser import WsgiDavDirBrowser
from wsgidav.error_printer import ErrorPrinter
from wsgidav.fs_dav_provider import FilesystemProvider
from wsgidav.http_authenticator import HTTPAuthenticator
from wsgidav.mw.base_mw import BaseMiddleware
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from daaas.portal.auth.models import User
from daaas.portal.db import unit_of_work
from daaas.portal.errors import PortalError
from daaas.portal.runtime import Runtime, runtime
from daaas.portal.storage import files
from daaas.portal.storage.app_passwords import app_password_user, check_app_password
from daaas.portal.storage.service import storage_area

log = logging.getLogger(__name__)
MOUNT = "/dav"
REALM = "daaas storage (use an app password from My Data)"
USER_KEY = "daaas.user"
ROOT_KEY = "daaas.storage_root"
#: a checked app password is trusted this long before scrypt runs again (revocation is seen
#: at once: the row is still looked up on every request)
CHECKED_FOR_SECONDS = 300.0
StartResponse = Callable[..., Any]


def mount_webdav(app: Flask) -> None:
    """Serve WebDAV at /dav/ beside ``app`` (wraps ``app.wsgi_app``)."""
    app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, {MOUNT: refuse_dot_segments(make_dav_app(runtime(app)))})


def refuse_dot_segments(dav_app: Any) -> Callable[[dict[str, Any], StartResponse], Any]:
    """Answer 400 to a path with '.' or '..' segments before WsgiDAV sees it (WsgiDAV's own
    refusal of such paths sends an empty body, which clients read as a broken connection)."""
    def guarded(environ: dict[str, Any], start_response: StartResponse) -> Any:
        parts = environ.get("PATH_INFO", "").split("/")
        if any(part in {".", ".."} for part in parts):
            body = b"The path leaves your storage: '.' and '..' are not allowed.\n"
            start_response("400 Bad Request", [("Content-Type", "text/plain; charset=utf-8"),
                                               ("Content-Length", str(len(body)))])
            return [body]
        return dav_app(environ, start_response)
    return guarded


def make_dav_app(rt: Runtime) -> Any:
    """Return the WsgiDAV application for the portal's users' storage."""
    placeholder = rt.settings.var_path
    placeholder.mkdir(parents=True, exist_ok=True)
    provider = UserStorageProvider(str(placeholder))
    config = {
        "mount_path": MOUNT,
        "provider_mapping": {"/": provider},
        "http_authenticator": {"domain_controller": AppPasswordController,
                               "accept_basic": True, "accept_digest": False,
                               "default_to_digest": False, "trusted_auth_header": None},
        "middleware_stack": [ErrorPrinter, HTTPAuthenticator, QuotaGuard, GiveToOwner,
                             WsgiDavDirBrowser, RequestResolver],
        # GET on a folder: a plain listing (clients HEAD folders to see that they exist)
        "dir_browser": {"enable": True, "icon": False, "response_trailer": "",
                        "show_user": True, "davmount": True, "davmount_links": False,
                        "ms_sharepoint_support": False, "libre_office_support": False},
        "property_manager": True,
        "lock_storage": True,
        "verbose": 1,
        "logging": {"enable": False},
        "suppress_version_info": True,
        "daaas_runtime": rt,
        "daaas_provider": provider,
    }
    return WsgiDAVApp(config)


class AppPasswordController(BaseDomainController):  # type: ignore[misc]
    """Checks HTTP Basic credentials against the user's app passwords."""

    def __init__(self, wsgidav_app: Any, config: dict[str, Any]) -> None:
        super().__init__(wsgidav_app, config)
        self.runtime: Runtime = config["daaas_runtime"]
        self._checked: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()

    def get_domain_realm(self, path_info: str, environ: dict[str, Any] | None) -> str:
        return REALM

    def require_authentication(self, realm: str, environ: dict[str, Any] | None) -> bool:
        return True

    def supports_http_digest_auth(self) -> bool:
        return False

    def basic_auth_user(self, realm: str, user_name: str, password: str,
                        environ: dict[str, Any]) -> bool:
        user = self._user(user_name, password)
        if user is None:
            log.info("WebDAV: refused credentials for %r from %s", user_name[:64],
                     environ.get("REMOTE_ADDR"))
            return False
        try:
            area = storage_area(self.runtime.settings, user)
        except (OSError, PortalError) as exc:
            log.warning("WebDAV: storage of %s unavailable: %s", user.username, exc)
            return False
        environ[USER_KEY] = user
        environ[ROOT_KEY] = str(area.path)
        return True

    def _user(self, username: str, secret: str) -> User | None:
        key = hashlib.sha256(f"{username}\0{secret}".encode()).hexdigest()
        with self._lock:
            known = self._checked.get(key)
        with unit_of_work(self.runtime.session_factory) as db:
            if known and known[1] > time.monotonic():
                return app_password_user(db, known[0])
            found = check_app_password(db, username, secret)
        if found is not None:
            with self._lock:
                self._checked[key] = (found[0], time.monotonic() + CHECKED_FOR_SECONDS)
            return found[1]
        return None


class UserStorageProvider(FilesystemProvider):  # type: ignore[misc]
    """A filesystem provider whose root is the authenticated user's storage folder."""

    def __init__(self, placeholder_root: str) -> None:
        super().__init__(placeholder_root, fs_opts={"follow_symlinks": False})

    def _loc_to_file_path(self, path: str, environ: dict[str, Any] | None = None) -> str:
        root = (environ or {}).get(ROOT_KEY)
        if not root:
            raise DAVError(HTTP_FORBIDDEN, "No storage for this request.")
        area = files.Root(key="storage", title="your storage", path=Path(root),
                          writable=True)
        try:
            files.resolve(area, path.strip("/"))
        except PortalError as exc:
            raise DAVError(HTTP_FORBIDDEN, exc.user_message) from None
        clean = files.clean_relative(path.strip("/"))
        return os.path.join(os.path.realpath(root), *([clean] if clean else []))


class QuotaGuard(BaseMiddleware):  # type: ignore[misc]
    """Refuses a PUT (507) that would take the user's storage over its quota."""

    def __call__(self, environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        user = environ.get(USER_KEY)
        length = environ.get("CONTENT_LENGTH")
        if length and length.isdigit() and not environ.get("wsgi.input_terminated"):
            # WsgiDAV reads a PUT body until EOF: end it at Content-Length on any server
            environ["wsgi.input"] = LimitedStream(environ["wsgi.input"], int(length))
        if environ.get("REQUEST_METHOD") == "PUT" and user is not None:
            rt: Runtime = self.config["daaas_runtime"]
            area = storage_area(rt.settings, user)
            room = area.quota_bytes - area.used_bytes
            size = int(length) if length and length.isdigit() else 0
            if size > room:
                message = files.quota_message(size, room)
                body = message.encode()
                start_response("507 Insufficient Storage",
                               [("Content-Type", "text/plain; charset=utf-8"),
                                ("Content-Length", str(len(body)))])
                return [body]
            environ["wsgi.input"] = _Limited(environ["wsgi.input"], room)
        result: Iterable[bytes] = self.next_app(environ, start_response)
        return result


class GiveToOwner(BaseMiddleware):  # type: ignore[misc]
    """After a PUT, MKCOL, COPY or MOVE, makes what it wrote owned by the storage's owner (the
    user's account, when the portal runs as root), so their desktops can use it."""

    WRITES = {"PUT", "MKCOL", "COPY", "MOVE"}

    def __call__(self, environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        result: Iterable[bytes] = self.next_app(environ, start_response)
        root = environ.get(ROOT_KEY)
        if root and environ.get("REQUEST_METHOD") in self.WRITES:
            result = list(result)  # the write is done once the body is produced
            provider: UserStorageProvider = self.config["daaas_provider"]
            written = [environ.get("PATH_INFO", "")]
            destination = environ.get("HTTP_DESTINATION", "")
            if destination:
                written = [urlsplit(destination).path.removeprefix(MOUNT)]
            for location in written:
                try:
                    files.give_to_owner(Path(root), Path(provider._loc_to_file_path(
                        unquote(location), environ)))
                except (OSError, DAVError) as exc:
                    log.warning("WebDAV: could not give %s to the storage's owner: %s",
                                location[:200], exc)
        return result


class _Limited:
    """A request body that refuses to deliver more than ``room`` bytes (chunked PUTs)."""

    def __init__(self, stream: BinaryIO, room: int) -> None:
        self._stream, self._room, self._read = stream, room, 0

    def read(self, size: int = -1) -> bytes:
        return self._count(self._stream.read(size))

    def readline(self, size: int = -1) -> bytes:
        return self._count(self._stream.readline(size))

    def _count(self, data: bytes) -> bytes:
        self._read += len(data)
        if self._read > self._room:
            raise DAVError(HTTP_INSUFFICIENT_STORAGE, "Storage quota exceeded.")
        return data
