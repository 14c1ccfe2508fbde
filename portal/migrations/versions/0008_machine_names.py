"""Machines have a name (machines.name); existing ones are named after their environment,
experiment and launch day, as new ones are.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 08:30:00.000000
"""
import json
from datetime import datetime

from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

MAX_NAME = 80
SEPARATOR = " · "


def _when(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _record(value: object) -> dict[str, object]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    return value if isinstance(value, dict) else {}


def _name(environment: object, environment_name: str, experiment: object,
          created_at: object) -> str:
    """The default name of daaas.portal.machines.naming.default_name, written out here so
    this migration keeps working whatever that module becomes."""
    title = " ".join(str(_record(environment).get("title") or environment_name or "").split())
    visit = str(_record(experiment).get("visit_id") or "")
    when = _when(created_at)
    date = f"{when.day} {when.strftime('%b')}" if when else ""
    tail = "".join(SEPARATOR + part for part in (visit, date) if part)
    head = title or "Machine"
    room = MAX_NAME - len(tail)
    if len(head) > room:
        head = head[:room - 1].rstrip() + "\N{HORIZONTAL ELLIPSIS}"
    return head + tail


def upgrade() -> None:
    with op.batch_alter_table('machines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('name', sa.String(length=80), nullable=False,
                                      server_default=''))
    connection = op.get_bind()
    machines = sa.table('machines', sa.column('id', sa.String), sa.column('user_id', sa.Integer),
                        sa.column('name', sa.String), sa.column('environment', sa.JSON),
                        sa.column('environment_name', sa.String),
                        sa.column('experiment', sa.JSON), sa.column('created_at', sa.DateTime))
    rows = connection.execute(sa.select(
        machines.c.id, machines.c.user_id, machines.c.environment, machines.c.environment_name,
        machines.c.experiment, machines.c.created_at).order_by(machines.c.created_at,
                                                               machines.c.id)).all()
    taken: dict[object, set[str]] = {}
    for row in rows:
        name = _name(row.environment, row.environment_name, row.experiment, row.created_at)
        mine = taken.setdefault(row.user_id, set())
        candidate, number = name, 2
        while candidate in mine:
            suffix = f" ({number})"
            candidate, number = name[:MAX_NAME - len(suffix)].rstrip() + suffix, number + 1
        mine.add(candidate)
        connection.execute(machines.update().where(machines.c.id == row.id)
                           .values(name=candidate))


def downgrade() -> None:
    with op.batch_alter_table('machines', schema=None) as batch_op:
        batch_op.drop_column('name')
