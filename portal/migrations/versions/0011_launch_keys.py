"""Idempotent launches (launch_keys): an Idempotency-Key or a launch form's one-time id finds
the machine it launched, unique per user.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 11:20:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('launch_keys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('machine_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['machine_id'], ['machines.id'], name=op.f('fk_launch_keys_machine_id_machines'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_launch_keys_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_launch_keys')),
    sa.UniqueConstraint('user_id', 'key', name=op.f('uq_launch_keys_user_id'))
    )


def downgrade() -> None:
    op.drop_table('launch_keys')
