"""Indexes for the lists' orders: machines newest first (everyone's, a user's, an
experiment's sessions) and a user's HPC jobs newest first, so a page of a list reads its rows
from an index instead of sorting every row; for the reconciler, machines by expiry, and
(state, id) in place of state alone, so its reads by state never touch the rows.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 11:10:00.000000
"""
from alembic import op

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('machines', schema=None) as batch_op:
        batch_op.create_index('ix_machines_created_at_id', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_machines_user_id_created_at', ['user_id', 'created_at', 'id'],
                              unique=False)
        batch_op.create_index('ix_machines_experiment_id_created_at',
                              ['experiment_id', 'created_at', 'id'], unique=False)
        batch_op.create_index('ix_machines_expires_at', ['expires_at'], unique=False)
        batch_op.drop_index('ix_machines_state')
        batch_op.create_index('ix_machines_state_id', ['state', 'id'], unique=False)
    with op.batch_alter_table('hpc_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_hpc_jobs_user_id_submitted_at',
                              ['user_id', 'submitted_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('hpc_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_hpc_jobs_user_id_submitted_at')
    with op.batch_alter_table('machines', schema=None) as batch_op:
        batch_op.drop_index('ix_machines_state_id')
        batch_op.create_index('ix_machines_state', ['state'], unique=False)
        batch_op.drop_index('ix_machines_expires_at')
        batch_op.drop_index('ix_machines_experiment_id_created_at')
        batch_op.drop_index('ix_machines_user_id_created_at')
        batch_op.drop_index('ix_machines_created_at_id')
