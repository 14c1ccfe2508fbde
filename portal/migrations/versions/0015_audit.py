"""The append-only audit trail (operations issue): who did what to what, when, from where.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 14:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'audit_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('actor', sa.String(length=200), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('target', sa.String(length=200), nullable=False),
        sa.Column('detail', sa.Text(), nullable=False),
        sa.Column('source', sa.String(length=64), nullable=False),
        sa.Column('admin', sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events')))
    op.create_index('ix_audit_events_at', 'audit_events', ['at'])
    op.create_index('ix_audit_events_actor_at', 'audit_events', ['actor', 'at'])
    op.create_index('ix_audit_events_action_at', 'audit_events', ['action', 'at'])


def downgrade() -> None:
    op.drop_index('ix_audit_events_action_at', table_name='audit_events')
    op.drop_index('ix_audit_events_actor_at', table_name='audit_events')
    op.drop_index('ix_audit_events_at', table_name='audit_events')
    op.drop_table('audit_events')
