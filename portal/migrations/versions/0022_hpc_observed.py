"""What the worker last observed of Slurm jobs and ICAT experiments (issue 19), so that page
views and API GETs read it instead of asking Slurm or ICAT: ``hpc_jobs.origin`` (a job found in
Slurm's listing that the portal did not submit gets a row of origin ``cluster``), when each
user's jobs were last listed (``hpc_observations``), and each user's ICAT investigations
(``observed_experiments``: their ids; ``observed_investigations``: each investigation as ICAT
answered).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03 18:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('hpc_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('origin', sa.String(length=16), nullable=False,
                                      server_default='portal'))
    op.create_table(
        'hpc_observations',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('cluster', sa.String(length=64), nullable=False),
        sa.Column('observed_at', sa.DateTime(), nullable=True),
        sa.Column('checked_at', sa.DateTime(), nullable=False),
        sa.Column('problem', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id', 'cluster'))
    op.create_table(
        'observed_experiments',
        sa.Column('username', sa.String(length=255), nullable=False),
        sa.Column('observed_at', sa.DateTime(), nullable=False),
        sa.Column('investigation_ids', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('username'))
    op.create_table(
        'observed_investigations',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('observed_at', sa.DateTime(), nullable=False),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint('id'))


def downgrade() -> None:
    op.drop_table('observed_investigations')
    op.drop_table('observed_experiments')
    op.drop_table('hpc_observations')
    with op.batch_alter_table('hpc_jobs', schema=None) as batch_op:
        batch_op.drop_column('origin')
