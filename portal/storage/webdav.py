"""The user's storage over WebDAV at /dav/, for mounting on their own computer.

WsgiDAV serves it beside the Flask app (a werkzeug DispatcherMiddleware). HTTP Basic
authentication takes an app password (:mod:`daaas.portal.storage.app_passwords`), never the sign-in
password; each request is then confined to that user's storage folder: the provider finds the
folder in the request, refuses paths that resolve outside it and refuses symlinks. A PUT
reserves its bytes in the quota before it writes any (:mod:`daaas.portal.storage.quota`) and
writes to a temporary file renamed into place at the end: one that would take the storage over
its quota is answered 507 (with the reason as text) and leaves nothing behind, one larger than
the whole quota 413.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from flask import Flask
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.wsgi import LimitedStream
from wsgidav.dav_error import (
    HTTP_FORBIDDEN,
    HTTP_INSUFFICIENT_STORAGE,
    HTTP_REQUEST_ENTITY_TOO_LARGE,
    DAVError,
)
from wsgidav.dc.base_dc import BaseDomainController
from wsgidav.dir_browser import WsgiDavDirBrowser
from wsgidav.error_printer import ErrorPrinter
from wsgidav.fs_dav_provider import FileResource, FilesystemProvider, FolderResource
from wsgidav.http_authenticator import HTTPAuthenticator
from wsgidav.mw.base_mw import BaseMiddleware
from wsgidav.request_resolver import RequestResolver
from wsgidav.wsgidav_app import WsgiDAVApp

from daaas.portal.auth.models import User
from daaas.portal.db import unit_of_work
from daaas.portal.errors import PortalError
from daaas.portal.runtime import Runtime, runtime
from daaas.portal.storage import files, usage
from daaas.portal.storage.app_passwords import app_password_user, check_app_password
from daaas.portal.storage.files import QuotaExceeded
from daaas.portal.storage.quota import (
    Upload,
    UploadTooLarge,
    quota_bytes,
    reserve_upload,
    room_before_upload,
    too_large_message,
)
from daaas.portal.storage.service import storage_area

log = logging.getLogger(__name__)
MOUNT = "/dav"
REALM = "daaas storage (use an app password from My Data)"
USER_KEY = "daaas.user"
ROOT_KEY = "daaas.storage_root"
#: the file a PUT created empty (WsgiDAV makes a new file before its body): removed if refused
NEW_FILE_KEY = "daaas.new_file"
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
        "middleware_stack": [ErrorPrinter, HTTPAuthenticator, QuotaGuard, ForgetUsage,
                             GiveToOwner, WsgiDavDirBrowser, RequestResolver],
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
        #: each user's storage folder, found once per process: a request's authentication
        #: then reads the database only (no walk, no file touched)
        self._roots: dict[int, str] = {}
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
        with self._lock:
            root = self._roots.get(user.id)
        if root is None:
            try:
                root = str(storage_area(self.runtime.settings, user).path)
            except (OSError, PortalError) as exc:
                log.warning("WebDAV: storage of %s unavailable: %s", user.username, exc)
                return False
            with self._lock:
                self._roots[user.id] = root
        environ[USER_KEY] = user
        environ[ROOT_KEY] = root
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

    def get_resource_inst(self, path: str, environ: dict[str, Any]) -> Any:
        """Return the file or folder at ``path`` as :class:`StorageFile` or
        :class:`StorageFolder` (None when there is none); raises DAVError (403) for a link."""
        file_path = self._loc_to_file_path(path, environ)
        if not os.path.exists(file_path):
            return None
        if os.path.islink(file_path):
            raise DAVError(HTTP_FORBIDDEN, "Links are not followed here.")
        if os.path.isdir(file_path):
            return StorageFolder(path, environ, file_path)
        return StorageFile(path, environ, file_path)


class StorageFolder(FolderResource):  # type: ignore[misc]
    """A folder of the user's storage: a new file made for a PUT is remembered, so a refused
    PUT removes it again."""

    def create_empty_resource(self, name: str) -> Any:
        """Create the empty file ``name`` for a PUT and return it (WsgiDAV's way)."""
        resource = super().create_empty_resource(name)
        self.environ[NEW_FILE_KEY] = resource._file_path
        return resource


class StorageFile(FileResource):  # type: ignore[misc]
    """A file of the user's storage, written by a PUT through a quota reservation and a
    temporary file next to it, renamed over it once the whole body is in."""

    upload: Upload | None = None

    def begin_write(self, *, content_type: str | None = None) -> Any:
        """Reserve the body's bytes and return where to write them. Raises DAVError: 507
        when the quota has no room, 413 for a body larger than the whole quota."""
        rt: Runtime = self.environ["wsgidav.config"]["daaas_runtime"]
        length = self.environ.get("CONTENT_LENGTH", "")
        try:
            self.upload = reserve_upload(rt.settings, self.environ[USER_KEY],
                                         Path(self._file_path).parent,
                                         int(length) if length.isdigit() else None)
        except (QuotaExceeded, UploadTooLarge) as exc:
            raise _dav_error(exc) from None
        return _Sink(self.upload)

    def end_write(self, *, with_errors: bool) -> None:
        """Move the written body into place, or (with errors) remove it and a file the PUT
        created. Raises OSError when the file cannot be moved."""
        upload, self.upload = self.upload, None
        if with_errors:
            if upload is not None:
                upload.abandon()
            if self.environ.get(NEW_FILE_KEY) == self._file_path:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._file_path)
        elif upload is not None:
            upload.finish(Path(self._file_path), Path(self.environ[ROOT_KEY]))


class _Sink:
    """What WsgiDAV writes a PUT's body to: the upload, refusing bytes past the quota."""

    def __init__(self, upload: Upload) -> None:
        self._upload = upload

    def write(self, data: bytes) -> None:
        try:
            self._upload.write(data)
        except QuotaExceeded as exc:
            raise _dav_error(exc) from None

    def close(self) -> None:
        """Nothing to do: StorageFile.end_write finishes or abandons the upload."""


def _dav_error(exc: QuotaExceeded | UploadTooLarge) -> DAVError:
    status = HTTP_INSUFFICIENT_STORAGE if isinstance(exc, QuotaExceeded) \
        else HTTP_REQUEST_ENTITY_TOO_LARGE
    return DAVError(status, exc.user_message)


class QuotaGuard(BaseMiddleware):  # type: ignore[misc]
    """Answers a PUT that cannot fit before WsgiDAV touches anything, with the reason as text:
    413 for a body larger than the whole quota, 507 for one larger than the room left (uploads
    in progress' reservations counted). The reservation itself is made when the body is
    written (:class:`StorageFile`), so this early answer is a courtesy, not the guard."""

    def __call__(self, environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        user = environ.get(USER_KEY)
        length = environ.get("CONTENT_LENGTH")
        if length and length.isdigit() and not environ.get("wsgi.input_terminated"):
            # WsgiDAV reads a PUT body until EOF: end it at Content-Length on any server
            environ["wsgi.input"] = LimitedStream(environ["wsgi.input"], int(length))
        if environ.get("REQUEST_METHOD") == "PUT" and user is not None and length and \
                length.isdigit():
            rt: Runtime = self.config["daaas_runtime"]
            size, quota = int(length), quota_bytes(rt.settings, user)
            if size > quota:
                return _text(start_response, "413 Request Entity Too Large",
                             too_large_message(size, quota))
            room = room_before_upload(rt.settings, user)
            if size > room:
                return _text(start_response, "507 Insufficient Storage",
                             files.quota_message(size, room))
        result: Iterable[bytes] = self.next_app(environ, start_response)
        return result


def _text(start_response: StartResponse, status: str, message: str) -> list[bytes]:
    body = (message + "\n").encode()
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body)))])
    return [body]


class ForgetUsage(BaseMiddleware):  # type: ignore[misc]
    """After a DELETE, COPY or MOVE, forgets the user's kept storage use
    (:func:`daaas.portal.storage.usage.forget`: the next quota check measures it again). A PUT
    adds its bytes itself when its upload finishes."""

    CHANGES = {"DELETE", "COPY", "MOVE"}

    def __call__(self, environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        result: Iterable[bytes] = self.next_app(environ, start_response)
        user = environ.get(USER_KEY)
        if user is not None and environ.get("REQUEST_METHOD") in self.CHANGES:
            result = list(result)  # the change is done once the body is produced
            usage.forget(self.config["daaas_runtime"].settings, user)
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
