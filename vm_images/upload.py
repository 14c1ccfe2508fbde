"""Images in Glance: upload, list, retire (roll back) and restore (roll forward).

The portal's OpenStack provider boots, for a catalogue entry, the image with the exact Glance
name ``image.name``, or the newest active image carrying the tag ``image.tag``
(``portal/providers/openstack.py``). Uploads match that: every image is uploaded as
``daaas-<env>-<UTC timestamp>`` with the tag ``daaas-image`` and the properties
``daaas_environment`` and ``daaas_built_at``, then :func:`promote` makes the newest image of
the environment that is not retired the one launches use:

- a tag entry: every kept image carries the tag, retired ones do not (the newest wins);
- a name entry: the chosen image is renamed to the catalogue's name, and the image that held
  the name before gets its own timestamped name back (Glance names must be unique for it).

Older images stay in Glance. Retiring the current image rolls back to the previous one;
restoring a retired image rolls forward again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from daaas.catalogue.collection import Catalogue
from daaas.catalogue.model import Environment

MANAGED_TAG = "daaas-image"
RETIRED_TAG = "daaas-retired"
#: Properties every daaas image carries (besides daaas_environment / daaas_built_at).
IMAGE_PROPERTIES = {"os_distro": "debian", "os_version": "12", "os_type": "linux",
                    "hw_disk_bus": "virtio", "hw_vif_model": "virtio",
                    "hw_video_model": "virtio", "hw_rng_model": "virtio",
                    "hw_qemu_guest_agent": "no", "hw_machine_type": "q35",
                    # the bootstrap agent's modes: "pool" waits for a warm pool's claim
                    "daaas_agent_modes": "session,pool"}


class ImageError(Exception):
    """An image operation cannot be done; the message says which image and what to do."""


@dataclass(frozen=True)
class ImageRow:
    """One of an environment's images, as ``daaas images list`` shows it."""

    id: str
    name: str
    built_at: str
    status: str
    retired: bool
    current: bool


def image_key(environment: Environment) -> tuple[str, str]:
    """Return how the catalogue finds the environment's image: ("name"|"tag", value)."""
    image = environment.image
    return ("name", image.name) if image.name else ("tag", str(image.tag))


def current_image(conn: Any, environment: Environment) -> Any | None:
    """Return the image a launch of ``environment`` boots (the provider's rule), or None."""
    kind, value = image_key(environment)
    if kind == "name":
        return conn.image.find_image(value, ignore_missing=True)
    tagged = conn.image.images(tag=[value], status="active", sort="created_at:desc", limit=1)
    return next(iter(tagged), None)


def missing_images(conn: Any, catalogue: Catalogue) -> list[str]:
    """Return one line per launchable environment whose image the cloud does not have."""
    lines = []
    for name, environment in catalogue.environments.items():
        if current_image(conn, environment) is None:
            kind, value = image_key(environment)
            lines.append(f"{name}: no image with the {kind} {value!r} in Glance; build and "
                         f"upload one: daaas images build {name} && daaas images upload "
                         f"{name} FILE")
    return lines


def stamp(moment: datetime) -> str:
    """Return the timestamp used in image names: 20261122T021500Z."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def upload(conn: Any, environment: Environment, path: Path,
           now: datetime | None = None) -> Any:
    """Upload ``path`` as a new image of ``environment`` and make it current; return it.

    The disk format comes from the file name (.qcow2, .raw/.img). Raises ImageError when the
    file is missing or Glance refuses it.
    """
    if not path.is_file():
        raise ImageError(f"{path} does not exist; build it with `daaas images build "
                         f"{environment.name}`")
    moment = now or datetime.now(UTC)
    properties = {**IMAGE_PROPERTIES, "daaas_environment": environment.name,
                  "daaas_built_at": moment.astimezone(UTC).isoformat(timespec="microseconds")}
    image = conn.image.create_image(
        f"daaas-{environment.name}-{stamp(moment)}", filename=str(path),
        disk_format="qcow2" if path.suffix == ".qcow2" else "raw", container_format="bare",
        tags=[MANAGED_TAG], allow_duplicates=True, wait=True, **properties)
    promote(conn, environment)
    return conn.image.get_image(image.id)


def environment_images(conn: Any, environment: Environment) -> list[Any]:
    """Return the environment's uploaded images, newest first."""
    found = [image for image in conn.image.images(tag=[MANAGED_TAG])
             if _property(image, "daaas_environment") == environment.name]
    return sorted(found, key=lambda i: (_property(i, "daaas_built_at"), i.created_at or ""),
                  reverse=True)


def list_images(conn: Any, environment: Environment) -> list[ImageRow]:
    """Return the environment's images, newest first, marking the one launches use."""
    current = current_image(conn, environment)
    return [ImageRow(image.id, image.name, _property(image, "daaas_built_at"), image.status,
                     RETIRED_TAG in (image.tags or []),
                     current is not None and current.id == image.id)
            for image in environment_images(conn, environment)]


def retire(conn: Any, environment: Environment, reference: str) -> Any:
    """Stop launches from using an image (it stays in Glance); return the new current image.

    Raises ImageError when ``reference`` (id or name) is not one of the environment's images.
    """
    image = _find(conn, environment, reference)
    conn.image.add_tag(image, RETIRED_TAG)
    return promote(conn, environment)


def restore(conn: Any, environment: Environment, reference: str) -> Any:
    """Let launches use a retired image again (if it is the newest kept); return the current.

    Raises ImageError when ``reference`` is not one of the environment's images.
    """
    image = _find(conn, environment, reference)
    if RETIRED_TAG in (image.tags or []):
        conn.image.remove_tag(image, RETIRED_TAG)
    return promote(conn, environment)


def promote(conn: Any, environment: Environment) -> Any | None:
    """Make the newest kept (not retired) image the one launches use; return it (or None)."""
    images = environment_images(conn, environment)
    kept = [image for image in images if RETIRED_TAG not in (image.tags or [])]
    chosen = kept[0] if kept else None
    kept_ids = {image.id for image in kept}
    kind, value = image_key(environment)
    if kind == "tag":
        for image in images:
            tagged = value in (image.tags or [])
            if image.id in kept_ids and not tagged:
                conn.image.add_tag(image, value)
            elif image.id not in kept_ids and tagged:
                conn.image.remove_tag(image, value)
        return chosen
    for image in images:  # give the name back before handing it on: it must stay unique
        if image.name == value and (chosen is None or image.id != chosen.id):
            conn.image.update_image(image, name=_archived_name(environment, image))
    if chosen is not None and chosen.name != value:
        conn.image.update_image(chosen, name=value)
    return chosen


def _archived_name(environment: Environment, image: Any) -> str:
    built = _property(image, "daaas_built_at")
    moment = datetime.fromisoformat(built) if built else datetime.now(UTC)
    return f"daaas-{environment.name}-{stamp(moment)}"


def _find(conn: Any, environment: Environment, reference: str) -> Any:
    for image in environment_images(conn, environment):
        if reference in (image.id, image.name):
            return image
    raise ImageError(f"{reference!r} is not an image of {environment.name}; see "
                     f"`daaas images list {environment.name}`")


def _property(image: Any, key: str) -> str:
    value = (getattr(image, "properties", None) or {}).get(key)
    if value is None:
        value = getattr(image, key, None)
    return str(value) if value is not None else ""
