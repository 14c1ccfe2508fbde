"""Quotas per user and per group (operations issue): the ``quotas`` table, one row per
user or group whose quota an administrator set (the settings' ``quotas`` give the rest).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 14:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'quotas',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('scope', sa.String(length=8), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('machines', sa.Integer(), nullable=True),
        sa.Column('vcpus', sa.Integer(), nullable=True),
        sa.Column('memory_gib', sa.Integer(), nullable=True),
        sa.Column('storage_gib', sa.Integer(), nullable=True),
        sa.Column('gpus', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('updated_by', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_quotas')),
        sa.UniqueConstraint('scope', 'name', name=op.f('uq_quotas_scope')))


def downgrade() -> None:
    op.drop_table('quotas')
