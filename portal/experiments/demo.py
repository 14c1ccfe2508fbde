"""Demo experiments for the embedded mode: two facilities, a few instruments and
investigations for the demo users, whose datasets are real (small) files under var/."""

from __future__ import annotations

import logging
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daaas.portal.config import Settings
from daaas.portal.db import utcnow
from daaas.portal.experiments.importer import import_experiments, parse
from daaas.portal.experiments.models import Investigation

FACILITIES = [
    {"name": "DLS", "full_name": "Diamond Light Source", "instruments": [
        {"name": "I03", "full_name": "I03: macromolecular crystallography"},
        {"name": "I04", "full_name": "I04: microfocus MX"},
        {"name": "I12", "full_name": "I12: JEEP, joint engineering, environmental and processing"},
    ]},
    {"name": "ISIS", "full_name": "ISIS Neutron and Muon Source", "instruments": [
        {"name": "WISH", "full_name": "WISH: long-wavelength diffractometer"},
        {"name": "MARI", "full_name": "MARI: direct geometry spectrometer"},
    ]},
]
log = logging.getLogger(__name__)
#: (visit, dataset) -> a real NeXus/HDF5 sample file written next to the demo frames
SAMPLES = {("MX31850-12", "xtal1"): "xtal1_master.nxs"}
#: Writes a small NXmx-style NeXus file (argv[1]): 4 frames of 64x64 synthetic diffraction
#: rings and spots, with the instrument, sample and time. Run by Debian's python3 (h5py comes
#: with python3-h5py, which silx view depends on): the portal itself does not need h5py.
NEXUS_WRITER = """
import sys
import h5py
import numpy as np
y, x = np.mgrid[-32:32, -32:32]
radius = np.hypot(x, y)
frames = []
for frame in range(4):
    rings = sum(np.exp(-((radius - r) ** 2) / 2.0) for r in (9, 17, 26))
    spots = np.zeros_like(radius)
    for angle in np.linspace(0, 2 * np.pi, 12, endpoint=False) + frame * 0.2:
        cx, cy = 20 * np.cos(angle), 20 * np.sin(angle)
        spots += np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 1.5)
    frames.append(np.round(40 + 300 * rings + 2000 * spots).astype(np.uint16))
with h5py.File(sys.argv[1], "w") as nexus:
    nexus.attrs["default"] = "entry"
    entry = nexus.create_group("entry")
    entry.attrs.update(NX_class="NXentry", default="data")
    entry["definition"] = "NXmx"
    entry["title"] = "MX31850-12 xtal1: demo diffraction frames"
    entry["start_time"] = "2026-01-01T09:00:00Z"
    instrument = entry.create_group("instrument")
    instrument.attrs["NX_class"] = "NXinstrument"
    instrument["name"] = "I03"
    detector = instrument.create_group("detector")
    detector.attrs["NX_class"] = "NXdetector"
    detector["distance"] = 0.25
    detector["distance"].attrs["units"] = "m"
    sample = entry.create_group("sample")
    sample.attrs["NX_class"] = "NXsample"
    sample["name"] = "xtal1"
    data = entry.create_group("data")
    data.attrs.update(NX_class="NXdata", signal="data")
    data.create_dataset("data", data=np.stack(frames), compression="gzip", chunks=(1, 64, 64))
"""
USERS = [{"name": "scientist", "full_name": "Dr Ada Crystal"},
         {"name": "neutron", "full_name": "Dr Ben Neutron"},
         {"name": "admin", "full_name": "Facility Admin"}]


def _investigations(now: datetime) -> list[dict[str, Any]]:
    day = timedelta(days=1)
    return [
        {"facility": "DLS", "name": "MX31850", "visit_id": "MX31850-12", "instruments": ["I03"],
         "title": "Ligand soaks of a bacterial membrane transporter",
         "start_date": now - 2 * day, "end_date": now + 5 * day,
         "users": [{"name": "scientist", "role": "principal_experimenter"}],
         "datasets": [("xtal1", "xtal1_{:04d}.cbf", 4), ("xtal2", "xtal2_{:04d}.cbf", 3)]},
        {"facility": "DLS", "name": "MG30512", "visit_id": "MG30512-3", "instruments": ["I12"],
         "title": "In-situ tomography of battery electrodes during cycling",
         "start_date": now - 60 * day, "end_date": now - 55 * day,
         "users": [{"name": "scientist", "role": "experimenter"}],
         "datasets": [("scan_102345", "projections_{:03d}.tif", 3)]},
        {"facility": "ISIS", "name": "RB2410357", "visit_id": "RB2410357-1",
         "instruments": ["WISH"], "title": "Magnetic order in a frustrated kagome lattice",
         "start_date": now - day, "end_date": now + 2 * day,
         "users": [{"name": "neutron", "role": "principal_experimenter"}],
         "datasets": [("run_51234", "WISH000{:05d}.nxs", 3)]},
        {"facility": "ISIS", "name": "RB2410999", "visit_id": "RB2410999-1",
         "instruments": ["MARI"], "title": "Crystal-field excitations in a rare-earth magnet",
         "start_date": now + 20 * day, "end_date": now + 23 * day,
         "users": [{"name": "neutron", "role": "experimenter"}], "datasets": []},
    ]


def create_demo_experiments(db: Session, settings: Settings) -> int:
    """Import the demo experiments if there are none, writing their files; returns how many."""
    if db.scalar(select(func.count(Investigation.id))):
        return 0
    root = settings.var_path / "experiments"
    investigations = []
    for item in _investigations(utcnow()):
        datasets = [_write_dataset(root, item, *spec) for spec in item.pop("datasets")]
        investigations.append({**item, "datasets": datasets})
    content = parse({"facilities": FACILITIES, "users": USERS, "investigations": investigations,
                     "instrument_scientists": [
                         {"facility": "DLS", "instrument": "I03", "user": "admin"}]}, "demo")
    return import_experiments(db, content)["investigations"]


def _write_dataset(root: Path, item: dict[str, Any], name: str, pattern: str,
                   count: int) -> dict[str, Any]:
    year = item["start_date"].year
    root.mkdir(mode=0o700, parents=True, exist_ok=True)  # reached only through bind mounts
    folder = root
    for part in (item["instruments"][0].lower(), str(year), item["visit_id"], name):
        folder = folder / part
        folder.mkdir(exist_ok=True)
        folder.chmod(0o755)  # readable by the members' desktops that mount it
    files = []
    for number in range(1, count + 1):
        path = folder / pattern.format(number)
        path.write_text(f"# demo data: {item['visit_id']} {name} frame {number}\n" * 32)
        path.chmod(0o644)
        files.append({"name": path.name, "size": path.stat().st_size})
    sample = SAMPLES.get((item["visit_id"], name))
    if sample and _write_nexus(folder / sample):
        files.append({"name": sample, "size": (folder / sample).stat().st_size})
    return {"name": name, "location": str(folder), "files": files}


def _write_nexus(path: Path) -> bool:
    """Write the NeXus sample ``path`` (0644) with Debian's python3 and h5py. Returns False,
    logging why, when they are missing or fail (the demo data is then without it)."""
    try:
        done = subprocess.run(["/usr/bin/python3", "-c", NEXUS_WRITER, str(path)],
                              capture_output=True, text=True, timeout=60, check=False,
                              env={"PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("demo NeXus sample %s not written: %s", path.name, error)
        return False
    if done.returncode != 0:
        log.warning("demo NeXus sample %s not written (apt-get install python3-h5py): %s",
                    path.name, done.stderr.strip().splitlines()[-1:])
        path.unlink(missing_ok=True)
        return False
    path.chmod(0o644)
    return True
