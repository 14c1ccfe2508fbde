"""Usage: machine-hours and GPU-hours per environment, group or user over a period, from the
machines' state-change events; as rows, CSV and a server-side SVG bar chart.

A machine counts while it holds resources at the provider: from each event into provisioning,
contextualising, ready or stopping until the next event (or now), clipped to the period. A
stopped machine keeps only its disk and does not count. GPU-hours are machine-hours times its
flavour's GPUs (the site's ``flavor_sizes``). A user in several groups counts in full for each
of them (the groups' totals can add up to more than the users').
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape
from typing import Literal

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, joinedload, selectinload

from daaas.portal.admin.service import RUNNING, flavor_size
from daaas.portal.config import Settings
from daaas.portal.errors import InvalidInput
from daaas.portal.machines.capacity import describe_flavors
from daaas.portal.machines.models import Machine
from daaas.portal.machines.states import State

GroupBy = Literal["environment", "group", "user"]
GROUP_BYS: tuple[GroupBy, ...] = ("environment", "group", "user")
#: The longest period one report covers.
MAX_PERIOD = timedelta(days=366)
NO_GROUP = "(no group)"


@dataclass(frozen=True)
class UsageRow:
    """One environment, group or user: its machine-hours and GPU-hours in the period."""

    key: str
    machine_hours: float
    gpu_hours: float


def running_hours(machine: Machine, start: datetime, end: datetime) -> float:
    """Return the hours ``machine`` held resources between ``start`` and ``end``, from its
    events (each event's ``to_state`` lasts until the next event; the last one until
    ``end``). Raises nothing."""
    total = 0.0
    events = sorted(machine.events, key=lambda e: (e.at, e.id or 0))
    if not events:  # a machine recorded without events (e.g. imported) held nothing we know of
        return 0.0
    for event, after in zip(events, [*events[1:], None], strict=True):
        if event.to_state not in RUNNING:
            continue
        since, until = max(event.at, start), min(after.at if after else end, end)
        if until > since:
            total += (until - since).total_seconds() / 3600
    return total


def check_period(start: datetime, end: datetime) -> None:
    """Raise InvalidInput unless ``start`` is before ``end`` and the period is at most
    :data:`MAX_PERIOD`; returns None."""
    if end <= start:
        raise InvalidInput("The period's end must come after its start.")
    if end - start > MAX_PERIOD:
        raise InvalidInput("A usage report covers at most 366 days.")


def usage(db: Session, settings: Settings, start: datetime, end: datetime, by: GroupBy,
          now: datetime) -> list[UsageRow]:
    """Return machine-hours and GPU-hours per ``by`` ("environment" by title, "group",
    "user") between ``start`` and ``end`` (not past ``now``), most machine-hours first; keys
    with no hours are left out. Raises InvalidInput for a bad period or grouping."""
    if by not in GROUP_BYS:
        raise InvalidInput("Group usage by 'environment', 'group' or 'user'.")
    check_period(start, end)
    until = min(end, now)
    sizes = describe_flavors(settings)
    machines = db.scalars(
        select(Machine).where(Machine.created_at < until,
                              or_(Machine.state != State.DELETED.value,
                                  Machine.state_changed_at > start))
        .options(joinedload(Machine.user), selectinload(Machine.events)))
    hours: dict[str, list[float]] = {}
    for machine in machines:
        spent = running_hours(machine, start, until) if until > start else 0.0
        if spent <= 0:
            continue
        gpus = flavor_size(sizes, machine.flavor).gpus
        if by == "environment":
            keys = [machine.environment.title]
        elif by == "user":
            keys = [machine.user.username]
        else:
            keys = list(machine.user.groups or []) or [NO_GROUP]
        for key in keys:
            line = hours.setdefault(key, [0.0, 0.0])
            line[0] += spent
            line[1] += spent * gpus
    return sorted((UsageRow(key, round(m, 3), round(g, 3)) for key, (m, g) in hours.items()),
                  key=lambda row: (-row.machine_hours, row.key))


def usage_csv(rows: list[UsageRow], by: GroupBy, start: datetime, end: datetime) -> str:
    """Return the rows as CSV: a header, then one line per key with the period. Raises
    nothing."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([by, "machine_hours", "gpu_hours", "period_start", "period_end"])
    for row in rows:
        key = row.key
        if key[:1] in ("=", "+", "-", "@"):  # never a formula in a spreadsheet
            key = "'" + key
        writer.writerow([key, f"{row.machine_hours:.3f}", f"{row.gpu_hours:.3f}",
                         start.isoformat(), end.isoformat()])
    return out.getvalue()


def _scale(value: float) -> tuple[float, int]:
    """Return a tick step (1, 2, 2.5 or 5 times a power of ten) and how many ticks reach at
    least ``value`` (at most 5, at least 1 hour in all)."""
    value = max(value, 1.0)
    power = 10 ** math.floor(math.log10(value / 4))
    step = next(power * f for f in (1, 2, 2.5, 5, 10) if power * f * 4 >= value)
    return step, math.ceil(value / step - 1e-9)


def usage_svg(rows: list[UsageRow], title: str) -> str:
    """Return a horizontal bar chart of the rows as an SVG element: per key a bar of
    machine-hours and one of GPU-hours on a shared scale, with values written out. No inline
    styles: the bars and text carry classes (``usage-machine``, ``usage-gpu``, ...) the
    static stylesheet colours. Raises nothing."""
    label_w, chart_w, row_h, top, bottom = 200, 480, 44, 40, 36
    width = label_w + chart_w + 90
    height = top + row_h * max(len(rows), 1) + bottom
    step, ticks = _scale(max([r.machine_hours for r in rows] + [r.gpu_hours for r in rows]
                             + [0.0]))
    scale = chart_w / (step * ticks)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="usage-chart" role="img" '
             f'aria-labelledby="usage-chart-title" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}">',
             f'<title id="usage-chart-title">{escape(title)}</title>',
             f'<text class="usage-heading" x="0" y="18">{escape(title)}</text>',
             f'<rect class="usage-machine" x="{label_w}" y="26" width="12" height="10"/>'
             f'<text class="usage-legend" x="{label_w + 16}" y="35">machine-hours</text>'
             f'<rect class="usage-gpu" x="{label_w + 130}" y="26" width="12" height="10"/>'
             f'<text class="usage-legend" x="{label_w + 146}" y="35">GPU-hours</text>']
    axis_y = top + row_h * max(len(rows), 1)
    for i in range(ticks + 1):
        value = step * i
        x = label_w + value * scale
        parts.append(f'<line class="usage-grid" x1="{x:.1f}" y1="{top}" x2="{x:.1f}" '
                     f'y2="{axis_y}"/>'
                     f'<text class="usage-tick" x="{x:.1f}" y="{axis_y + 16}" '
                     f'text-anchor="middle">{value:g}</text>')
    parts.append(f'<text class="usage-tick" x="{label_w + chart_w / 2:.0f}" '
                 f'y="{axis_y + 32}" text-anchor="middle">hours</text>')
    if not rows:
        parts.append(f'<text class="usage-empty" x="{label_w + 8}" y="{top + 26}">'
                     'No machine ran in this period.</text>')
    for i, row in enumerate(rows):
        y = top + i * row_h
        key = row.key if len(row.key) <= 28 else row.key[:27] + "\N{HORIZONTAL ELLIPSIS}"
        parts.append(f'<g class="usage-row" data-key="{escape(row.key)}">'
                     f'<text class="usage-label" x="{label_w - 8}" y="{y + 24}" '
                     f'text-anchor="end">{escape(key)}</text>')
        for offset, value, kind in ((6, row.machine_hours, "machine"),
                                    (22, row.gpu_hours, "gpu")):
            bar = value * scale
            parts.append(f'<rect class="usage-{kind}" x="{label_w}" y="{y + offset}" '
                         f'width="{bar:.1f}" height="14"><title>{escape(row.key)}: '
                         f'{value:.1f} {"machine" if kind == "machine" else "GPU"}-hours'
                         f'</title></rect>'
                         f'<text class="usage-value" x="{label_w + bar + 4:.1f}" '
                         f'y="{y + offset + 11}">{value:.1f}</text>')
        parts.append("</g>")
    parts.append(f'<line class="usage-axis" x1="{label_w}" y1="{top}" x2="{label_w}" '
                 f'y2="{axis_y}"/></svg>')
    return "".join(parts)
