"""Warm-pool schedules and sizes set by admins (instant desktops issue): ``pool_settings``,
one row per pool an administrator changed, with its size and schedule (either NULL: the
settings' own), in the database so every web host and worker sharing it agrees (they were in
``var_dir/pool_sizes.json``, per host).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 18:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'pool_settings',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('size', sa.Integer(), nullable=True),
        sa.Column('schedule', sa.JSON(), nullable=True),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('updated_by', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )


def downgrade() -> None:
    op.drop_table('pool_settings')
