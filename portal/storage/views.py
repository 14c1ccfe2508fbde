"""My Data: browse, upload, download, new folder, rename and delete in the user's storage;
experiments' data read-only beside it; app passwords for WebDAV."""

from __future__ import annotations

from typing import Any, BinaryIO, cast

from flask import (
    Blueprint,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from daaas.portal.auth.current import current_user, require_user
from daaas.portal.auth.models import User
from daaas.portal.errors import Conflict, InvalidInput
from daaas.portal.experiments.backends import InvestigationInfo
from daaas.portal.lifecycle import db, error_response, wants_json
from daaas.portal.machines.naming import experiment_on_desktop, storage_on_desktop
from daaas.portal.runtime import runtime
from daaas.portal.storage import files, usage
from daaas.portal.storage.app_passwords import (
    app_passwords,
    create_app_password,
    revoke_app_password,
)
from daaas.portal.storage.quota import UploadTooLarge, quota_bytes, reserver, too_large_message
from daaas.portal.storage.roots import (
    EXPERIMENT_PREFIX,
    STORAGE_KEY,
    experiments_of,
    own_storage,
    root_for,
)

blueprint = Blueprint("storage", __name__, url_prefix="/my-data")
FORM_TYPES = {"multipart/form-data", "application/x-www-form-urlencoded"}


@blueprint.url_value_preprocessor
def _stream_uploads(endpoint: str | None, _values: dict[str, Any] | None) -> None:
    """Uploads are streamed from the request body, so raise the 1 MiB body limit for them to
    the quota (checked exactly in the view) before anything, the CSRF check included, touches
    the body; a body announced larger than the whole quota is refused here (413, saying so)."""
    if endpoint == "storage.upload":
        if request.mimetype in FORM_TYPES:
            raise InvalidInput("Send the file itself as the request body "
                               "(Content-Type: application/octet-stream).")
        # (None would mean "the app's limit" to Flask: no body can exceed the whole quota)
        limit = quota_bytes(runtime().settings, current_user())
        if request.content_length is not None and request.content_length > limit:
            raise UploadTooLarge(too_large_message(request.content_length, limit))
        request.max_content_length = limit


@blueprint.errorhandler(UploadTooLarge)
@blueprint.errorhandler(RequestEntityTooLarge)
def _too_large(exc: Exception) -> ResponseReturnValue:
    """A body over the limit gets the quota's words, not a bare 413: JSON for a script or the
    page's uploader, else the folder's page with the message next to the upload control."""
    user = current_user()
    if isinstance(exc, UploadTooLarge):
        message = exc.user_message
    elif request.endpoint == "storage.upload":
        message = too_large_message(request.content_length, quota_bytes(runtime().settings,
                                                                        user))
    else:  # a form of My Data over the app's body limit
        limit = request.max_content_length or 0
        return error_response(413, "request_too_large", "What was sent is larger than the "
                              f"{files.human_size(limit)} this form accepts.")
    if wants_json() or user is None:
        return error_response(413, "upload_too_large", message)
    root = root_for(runtime(), user, request.args.get("root", STORAGE_KEY))
    return _page(user, root, request.args.get("path", ""), upload_error=message), 413


@blueprint.get("/")
def index() -> ResponseReturnValue:
    """The top folder of the user's storage."""
    return browse(STORAGE_KEY, "")


@blueprint.get("/<root_key>/")
@blueprint.get("/<root_key>/<path:subpath>")
def browse(root_key: str, subpath: str = "") -> ResponseReturnValue:
    """Show a folder, or stream a file as a download."""
    rt, user = runtime(), require_user()
    root = root_for(rt, user, root_key)
    if not files.existing(root, subpath).is_dir():
        return _download(root, subpath)
    return _page(user, root, subpath)


def _page(user: User, root: files.Root, subpath: str, **extra: Any) -> str:
    rt = runtime()
    storage, area = own_storage(rt, user)
    investigations, experiments_problem = experiments_of(rt, user)
    clean = files.clean_relative(subpath)
    crumbs = [(part, "/".join(clean.split("/")[:i + 1])) for i, part in enumerate(clean.split("/"))
              ] if clean else []
    return render_template("storage/index.html", root=root, path=clean, crumbs=crumbs,
                           entries=files.listing(root, clean), area=area,
                           room=max(area.quota_bytes - area.used_bytes, 0),
                           human_size=files.human_size, investigations=investigations,
                           experiments_problem=experiments_problem, storage=storage,
                           passwords=app_passwords(db(), user), dav_url=_dav_url(),
                           webdav_enabled=rt.settings.webdav_enabled,
                           desktop_path=_desktop_path(root, clean, investigations), **extra)


def _desktop_path(root: files.Root, clean: str, investigations: list[InvestigationInfo]
                  ) -> str | None:
    """Where the folder shown is on the user's desktops (``~/storage/results``), or None
    when desktops of this portal do not get it."""
    settings = runtime().settings
    if root.key == STORAGE_KEY:
        top = storage_on_desktop(settings, settings.provider)
    else:
        visits = [i.visit_id for i in investigations if f"{EXPERIMENT_PREFIX}{i.id}" == root.key]
        top = experiment_on_desktop(settings, settings.provider, visits[0]) if visits else None
    return f"{top}/{clean}" if top and clean else top


def _dav_url() -> str:
    base = runtime().settings.public_url or request.url_root
    return base.rstrip("/") + "/dav/"


def _download(root: files.Root, subpath: str) -> Response:
    handle, info = files.open_for_reading(root, subpath)
    response = send_file(handle, as_attachment=True, download_name=subpath.rsplit("/", 1)[-1],
                         conditional=False, max_age=0)
    response.content_length = info.st_size
    response.last_modified = info.st_mtime  # type: ignore[assignment]
    response.set_etag(f"{info.st_ino:x}-{info.st_size:x}-{info.st_mtime_ns:x}")
    return response.make_conditional(request, accept_ranges=True, complete_length=info.st_size)


@blueprint.post("/-/upload")
def upload() -> ResponseReturnValue:
    """Stream the request body into a new file (query: root, path = folder, name), its size
    reserved in the quota before a byte is written (:mod:`daaas.portal.storage.quota`)."""
    rt, user = runtime(), require_user()
    root = root_for(rt, user, request.args.get("root", STORAGE_KEY))
    files.writable(root)
    if request.content_length is None:
        raise InvalidInput("The upload needs a Content-Length header (the My Data page and "
                           "curl's --upload-file send one).")
    saved = files.save_stream(root, request.args.get("path", ""), request.args.get("name", ""),
                              cast(BinaryIO, request.stream), request.content_length,
                              reserver(rt.settings, user))
    return {"name": saved.name, "size": saved.stat().st_size}, 201


@blueprint.post("/-/mkdir")
def make_folder() -> ResponseReturnValue:
    """Create a folder (form: root, path = parent, name).

    A name that cannot be used ('..', 'a/b', empty, over-long) or that is taken is shown next
    to the folder-name field on the same page, with what was typed kept and the error's status
    (400, 409), and nothing is created; a JSON caller gets the JSON error instead.
    """
    root, path = _target()
    typed = request.form.get("name", "")
    try:
        made = files.make_folder(root, path, typed)
    except (InvalidInput, Conflict) as exc:
        if wants_json():
            raise
        return _page(require_user(), root, path, folder_error=exc.user_message,
                     typed_folder=typed), exc.status_code
    flash(f"Folder '{made.name}' created.")
    return _back(root, path)


@blueprint.post("/-/rename")
def rename() -> Response:
    """Rename a file or folder within its folder (form: root, path, new_name)."""
    root, path = _target()
    renamed = files.rename(root, path, request.form.get("new_name", ""))
    flash(f"Renamed to '{renamed.name}'.")
    return _back(root, _parent(path))


@blueprint.get("/-/delete")
def confirm_delete() -> str:
    """Ask before deleting (query: root, path)."""
    rt, user = runtime(), require_user()
    root = root_for(rt, user, request.args.get("root", STORAGE_KEY))
    files.writable(root)
    path = files.clean_relative(request.args.get("path", ""))
    item = files.existing(root, path, follow=False)
    return render_template("storage/delete.html", root=root, path=path,
                           is_dir=item.is_dir() and not item.is_symlink())


@blueprint.post("/-/delete")
def delete() -> Response:
    """Delete once confirmed (form: root, path, confirm=yes); else show the question."""
    root, path = _target()
    if request.form.get("confirm") != "yes":
        return redirect(url_for("storage.confirm_delete", root=root.key, path=path))
    files.delete(root, path)
    usage.forget(runtime().settings, require_user())  # measured again at the next check
    flash(f"Deleted '{path.rsplit('/', 1)[-1]}'.")
    return _back(root, _parent(path))


@blueprint.post("/-/app-passwords")
def new_app_password() -> ResponseReturnValue:
    """Create an app password and show its secret, once."""
    user = require_user()
    row, secret = create_app_password(db(), user, request.form.get("name", ""))
    root, _area = own_storage(runtime(), user)
    return _page(user, root, "", new_password=(row, secret)), 201


@blueprint.post("/-/app-passwords/<int:password_id>/revoke")
def revoke(password_id: int) -> Response:
    """Revoke one of the user's app passwords."""
    name = revoke_app_password(db(), require_user(), password_id)
    flash(f"App password '{name}' revoked: computers using it can no longer connect.")
    return redirect(url_for("storage.index") + "#connect")


def _target() -> tuple[files.Root, str]:
    root = root_for(runtime(), require_user(), request.form.get("root", STORAGE_KEY))
    return root, files.clean_relative(request.form.get("path", ""))


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def _back(root: files.Root, folder: str) -> Response:
    if folder:
        return redirect(url_for("storage.browse", root_key=root.key, subpath=folder + "/"))
    return redirect(url_for("storage.browse", root_key=root.key))
