"""What people call a machine, and where its folders are as the person sees them.

A machine has a name its owner can change; a new one is named after its environment, its
experiment and the day it was launched ("Analysis desktop · MX31850-12 · 3 Dec"), with " (2)",
" (3)" … when the owner already has a machine of that name, so two machines are never shown
alike. Pages show folders as they appear on the desktop (``~/storage``,
``~/experiment-MX31850-12``), never where the portal's host keeps them.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime

from daaas.portal.config import Settings, parse_flavor_sizes
from daaas.portal.errors import InvalidInput

#: The longest name a machine may have, in characters.
MAX_NAME = 80
#: Between the parts of a default name.
SEPARATOR = " · "
#: The home-folder entry a session's storage appears as (local desktops, and cloud machines
#: that mount network storage at ``/home/<user>/storage``).
STORAGE_FOLDER = "storage"
#: The home-folder entry of an experiment's data is this followed by its visit id.
EXPERIMENT_FOLDER_PREFIX = "experiment-"
#: Providers whose sessions show the portal's mounts in the user's home folder.
MOUNTING_PROVIDERS = frozenset({"local"})


def short_date(when: datetime) -> str:
    """Return ``when`` as "3 Dec" (day without a leading zero, English month). Raises nothing."""
    return f"{when.day} {when.strftime('%b')}"


def when_text(when: datetime) -> str:
    """Return ``when`` (aware, UTC) as "3 Dec 2026, 08:21 UTC". Raises nothing."""
    return f"{short_date(when)} {when.year}, {when.strftime('%H:%M')} UTC"


def default_name(title: str, visit_id: str | None, created_at: datetime) -> str:
    """Return the name a new machine gets: "<environment title> · <visit> · <short date>"
    (without the visit when it has no experiment), cut to :data:`MAX_NAME` characters keeping
    the date. Raises nothing."""
    tail = "".join(SEPARATOR + part for part in (visit_id, short_date(created_at)) if part)
    head = " ".join(title.split()) or "Machine"
    room = MAX_NAME - len(tail)
    if len(head) > room:
        head = head[:room - 1].rstrip() + "\N{HORIZONTAL ELLIPSIS}"
    return head + tail


def unique_name(name: str, taken: Collection[str]) -> str:
    """Return ``name``, or ``name (2)``, ``name (3)`` … (cut to fit :data:`MAX_NAME`), the
    first that is not in ``taken``. Raises nothing."""
    if name not in taken:
        return name
    number = 2
    while True:
        suffix = f" ({number})"
        candidate = name[:MAX_NAME - len(suffix)].rstrip() + suffix
        if candidate not in taken:
            return candidate
        number += 1


def unique_prefix(name: str) -> str:
    """Return the text every name :func:`unique_name` may give for ``name`` starts with (a
    launch reads only the owner's names that do). Raises nothing."""
    return name[:MAX_NAME - len(" (1000000000)")].rstrip()


def clean_name(raw: object) -> str:
    """Return the name a person typed, its outer spaces removed.

    Raises InvalidInput, saying what is allowed, for a name that is not text, is empty, is
    longer than :data:`MAX_NAME` characters, or holds characters that cannot be shown (line
    breaks, tabs, control characters).
    """
    if not isinstance(raw, str):
        raise InvalidInput("A machine's name must be text, e.g. \"Refinement of crystal 1\".")
    name = raw.strip()
    if not name:
        raise InvalidInput(f"Give the machine a name: 1 to {MAX_NAME} characters.")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"A machine's name may have at most {MAX_NAME} characters; this one "
                           f"has {len(name)}.")
    if not name.isprintable():
        raise InvalidInput("A machine's name may not contain line breaks, tabs or other "
                           "control characters.")
    return name


def experiment_folder(visit_id: str) -> str:
    """Return the home-folder entry of an experiment's data ("experiment-MX31850-12").
    Raises nothing."""
    return f"{EXPERIMENT_FOLDER_PREFIX}{visit_id}"


def experiment_on_desktop(settings: Settings, provider: str, visit_id: str) -> str | None:
    """Return where a desktop of ``provider`` shows an experiment's data
    ("~/experiment-MX31850-12"), or None when its machines do not get the data (cloud
    machines when the site sets no ``experiment_export``). Raises nothing."""
    if provider in MOUNTING_PROVIDERS or settings.experiment_export:
        return f"~/{experiment_folder(visit_id)}"
    return None


def storage_on_desktop(settings: Settings, provider: str) -> str | None:
    """Return where a desktop of ``provider`` shows the user's storage ("~/storage"), or None
    when its machines do not get it (cloud machines with the portal-local storage backend that
    this host does not export, ``local_storage_export``). Raises nothing."""
    if (provider in MOUNTING_PROVIDERS or settings.storage_backend != "local"
            or settings.local_storage_export):
        return f"~/{STORAGE_FOLDER}"
    return None


def size_label(settings: Settings, flavor: str) -> str:
    """Return what ``flavor`` is ("4 cores · 16 GiB", "8 cores · 64 GiB · NVIDIA A100"), or
    the flavor's name when the ``flavor_sizes`` setting does not describe it. Raises nothing
    (the setting was checked at start-up)."""
    size = parse_flavor_sizes(settings.flavor_sizes).get(flavor)
    return size.label if size else flavor
