"""Warm pools (issue 20): a machine booted ahead of any user waits in a pool; ``pool`` names
it ("environment/flavor") until a launch claims it, ``claimed_at`` says when it was claimed
and ``personalised_at`` when the claimer's account, folders and session were set up on it.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 15:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0020'
down_revision = '0019'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('machines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pool', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('personalised_at', sa.DateTime(), nullable=True))
        batch_op.create_index('ix_machines_pool_state', ['pool', 'state'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('machines', schema=None) as batch_op:
        batch_op.drop_index('ix_machines_pool_state')
        batch_op.drop_column('personalised_at')
        batch_op.drop_column('claimed_at')
        batch_op.drop_column('pool')
