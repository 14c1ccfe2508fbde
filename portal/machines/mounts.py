"""Experiment data for cloud VMs: read-only network mounts derived from the datasets' locations.

A site exports its data per instrument and cycle (or any folders a template names): the
settings say which folder of the data store an export covers (``experiment_export_location``,
e.g. ``/archive/{instrument}/{cycle}``, each ``{field}`` one folder), how the VM reaches it
(``experiment_export_source``, e.g. ``nfs.example.org:/exports/{instrument}/{cycle}``), with
which options (``experiment_export_options``) and whether by NFS or CephFS
(``experiment_export``). A machine's experiment snapshot holds its datasets' locations (ICAT's
``Dataset.location``, or the embedded catalogue's); each location under an export maps to a
folder of that export, and the datasets of one export are mounted once, at their common folder,
read-only. The mounts reach the VM through the bootstrap exchange (not user-data) and the agent
mounts them read-only. The local provider shows the same data its own way
(:func:`daaas.portal.machines.spec.session_mounts`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

from pydantic import ValidationError

from daaas.contextualisation import Mount
from daaas.contextualisation.mounts import FSTYPES
from daaas.portal.config import Settings
from daaas.portal.machines.naming import experiment_folder

log = logging.getLogger(__name__)
_FIELD_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class ExportRule:
    """How the site exports experiment data: file system, covered folder, export, options."""

    kind: Literal["nfs", "cephfs"]
    location: str
    source: str
    options: tuple[str, ...] = ()

    def match(self, location: str) -> tuple[dict[str, str], PurePosixPath] | None:
        """Return the template's fields and the rest of the path for a location under the
        covered folder, or None for one outside it. Raises nothing."""
        pattern, last = "", 0
        for field in _FIELD_RE.finditer(self.location.rstrip("/")):
            pattern += re.escape(self.location[last:field.start()])
            pattern += f"(?P<{field.group(1)}>[^/]+)"
            last = field.end()
        pattern += re.escape(self.location.rstrip("/")[last:])
        found = re.fullmatch(pattern + r"(?P<_rest>/.*)?", str(PurePosixPath(location)))
        if found is None:
            return None
        fields = {k: v for k, v in found.groupdict().items() if k != "_rest"}
        return fields, PurePosixPath((found.group("_rest") or "/").lstrip("/") or ".")


def export_rule(settings: Settings) -> ExportRule | None:
    """Return the site's export rule, or None when cloud VMs get no experiment data.

    Raises nothing (the settings were checked when loaded).
    """
    if not (settings.experiment_export and settings.experiment_export_location
            and settings.experiment_export_source):
        return None
    options = tuple(o.strip() for o in settings.experiment_export_options.split(",") if o.strip())
    return ExportRule(settings.experiment_export, settings.experiment_export_location,
                      settings.experiment_export_source, options)


def locations_of(experiment: Mapping[str, Any]) -> list[str]:
    """Return a machine's experiment data locations: its datasets', else its data path.

    Raises nothing.
    """
    locations = [str(x) for x in experiment.get("data_locations") or [] if x]
    return locations or ([str(experiment["data_path"])] if experiment.get("data_path") else [])


def experiment_mounts(rule: ExportRule | None, experiment: Mapping[str, Any] | None,
                      home: str) -> tuple[Mount, ...]:
    """Return the read-only mounts of an experiment's data under ``home``.

    One mount per export its datasets lie under, at their common folder: ``~/experiment-<visit>``
    for one, ``~/experiment-<visit>-<fields>`` each for several. Locations outside every export,
    or whose path a mount cannot carry, are left out (logged). Raises nothing.
    """
    if rule is None or not experiment:
        return ()
    visit = str(experiment.get("visit_id", ""))
    groups: dict[str, tuple[dict[str, str], list[PurePosixPath]]] = {}
    for location in locations_of(experiment):
        matched = rule.match(location)
        if matched is None:
            log.warning("experiment %s: %s is outside the export %s", visit, location,
                        rule.location)
            continue
        fields, rest = matched
        try:
            source = rule.source.format(**{**_experiment_fields(experiment), **fields})
        except (KeyError, IndexError, ValueError) as exc:
            log.warning("experiment %s: export template %s: %s", visit, rule.source, exc)
            continue
        groups.setdefault(source, (fields, []))[1].append(rest)
    mounts = (_mount(rule, source, fields, rests, visit, home, len(groups) > 1)
              for source, (fields, rests) in groups.items())
    return tuple(mount for mount in mounts if mount is not None)


def _experiment_fields(experiment: Mapping[str, Any]) -> dict[str, str]:
    instruments = experiment.get("instruments") or ["unknown"]
    return {"facility": str(experiment.get("facility", "")), "instrument": str(instruments[0]),
            "visit_id": str(experiment.get("visit_id", "")),
            "name": str(experiment.get("name", ""))}


def _mount(rule: ExportRule, source: str, fields: dict[str, str],
           rests: Sequence[PurePosixPath], visit: str, home: str,
           several: bool) -> Mount | None:
    common = rests[0]
    while not all(r == common or common in r.parents for r in rests):
        common = common.parent
    folder = source.rstrip("/") + ("" if str(common) == "." else f"/{common}")
    name = experiment_folder(visit)
    if several:
        name += "-" + "-".join(fields.values())
    try:
        return Mount(kind=rule.kind, source=folder, target=f"{home}/{name}", read_only=True,
                     options=rule.options, purpose="experiment", label=f"experiment {visit}")
    except ValidationError as exc:
        log.warning("experiment %s: cannot mount %s: %s", visit, folder, exc)
        return None


def exchange_mounts(mounts: Sequence[Mount]) -> list[dict[str, str]]:
    """Return the mounts as the bootstrap exchange hands them to the agent: each at a folder
    of the user's home (the agent knows where that is). Raises nothing."""
    return [{"fstype": FSTYPES[m.kind], "source": m.source, "folder": PurePosixPath(m.target).name,
             "options": ",".join(dict.fromkeys(("ro" if m.read_only else "rw", *m.options))),
             "label": m.label} for m in mounts]
