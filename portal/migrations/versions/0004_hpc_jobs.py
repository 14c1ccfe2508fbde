"""HPC jobs submitted through the portal (hpc_jobs).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 00:30:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('hpc_jobs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('cluster', sa.String(length=64), nullable=False),
    sa.Column('slurm_job_id', sa.Integer(), nullable=False),
    sa.Column('machine_id', sa.String(length=32), nullable=True),
    sa.Column('experiment_id', sa.Integer(), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('template', sa.String(length=64), nullable=False),
    sa.Column('partition', sa.String(length=64), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('exit_code', sa.Integer(), nullable=True),
    sa.Column('work_dir', sa.Text(), nullable=False),
    sa.Column('output_path', sa.Text(), nullable=False),
    sa.Column('submitted_at', sa.DateTime(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=False),
    sa.Column('ended_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['machine_id'], ['machines.id'], name=op.f('fk_hpc_jobs_machine_id_machines'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_hpc_jobs_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hpc_jobs')),
    sa.UniqueConstraint('cluster', 'slurm_job_id', name='uq_hpc_jobs_cluster_slurm_job_id')
    )
    op.create_index(op.f('ix_hpc_jobs_experiment_id'), 'hpc_jobs', ['experiment_id'], unique=False)
    op.create_index(op.f('ix_hpc_jobs_machine_id'), 'hpc_jobs', ['machine_id'], unique=False)
    op.create_index(op.f('ix_hpc_jobs_user_id'), 'hpc_jobs', ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_hpc_jobs_user_id'), table_name='hpc_jobs')
    op.drop_index(op.f('ix_hpc_jobs_machine_id'), table_name='hpc_jobs')
    op.drop_index(op.f('ix_hpc_jobs_experiment_id'), table_name='hpc_jobs')
    op.drop_table('hpc_jobs')
