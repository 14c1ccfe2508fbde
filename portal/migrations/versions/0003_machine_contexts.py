"""The bootstrap exchange of cloud-init machines (machine_contexts).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 00:04:24.986261
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('machine_contexts',
    sa.Column('machine_id', sa.String(length=32), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.Column('report_token_hash', sa.String(length=64), nullable=True),
    sa.Column('reported_status', sa.String(length=16), nullable=True),
    sa.Column('reported_reason', sa.Text(), nullable=False),
    sa.Column('reported_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['machine_id'], ['machines.id'], name=op.f('fk_machine_contexts_machine_id_machines'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('machine_id', name=op.f('pk_machine_contexts')),
    sa.UniqueConstraint('report_token_hash', name=op.f('uq_machine_contexts_report_token_hash')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_machine_contexts_token_hash'))
    )


def downgrade() -> None:
    op.drop_table('machine_contexts')
