"""Home-folder grace period and restore, and activity besides desktop connections (lifetimes
issue): ``kept_homes`` (the home of a local machine deleted by policy, kept for
``home_grace_days``, restored by an administrator or purged) and ``machine_activity`` (keep
running until, the VM agent's last activity report).

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 14:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'kept_homes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('machine_id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('decided_at', sa.DateTime(), nullable=False),
        sa.Column('purge_after', sa.DateTime(), nullable=False),
        sa.Column('restored_to', sa.String(length=300), nullable=False),
        sa.Column('done_at', sa.DateTime(), nullable=True),
        sa.Column('done_by', sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(['machine_id'], ['machines.id'],
                                name=op.f('fk_kept_homes_machine_id_machines'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_kept_homes_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_kept_homes')),
        sa.UniqueConstraint('machine_id', name=op.f('uq_kept_homes_machine_id')))
    op.create_index('ix_kept_homes_user_id', 'kept_homes', ['user_id'])
    op.create_index('ix_kept_homes_status', 'kept_homes', ['status'])
    op.create_table(
        'machine_activity',
        sa.Column('machine_id', sa.String(length=32), nullable=False),
        sa.Column('keep_running_until', sa.DateTime(), nullable=True),
        sa.Column('vm_active_at', sa.DateTime(), nullable=True),
        sa.Column('vm_reported_at', sa.DateTime(), nullable=True),
        sa.Column('vm_cpu_percent', sa.Float(), nullable=True),
        sa.Column('vm_sessions', sa.Integer(), nullable=True),
        sa.Column('vm_detail', sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(['machine_id'], ['machines.id'],
                                name=op.f('fk_machine_activity_machine_id_machines'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('machine_id', name=op.f('pk_machine_activity')))


def downgrade() -> None:
    op.drop_table('machine_activity')
    op.drop_index('ix_kept_homes_status', table_name='kept_homes')
    op.drop_index('ix_kept_homes_user_id', table_name='kept_homes')
    op.drop_table('kept_homes')
