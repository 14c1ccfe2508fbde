"""Machine lifetimes and notifications: extension requests awaiting an administrator, the
e-mail outbox (one row per event, unique key), and when the desktop proxy last saw a
connection to a machine (idle stop).

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 11:50:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0013'
down_revision = '0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'extension_requests',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('machine_id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('asked_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at_then', sa.DateTime(), nullable=False),
        sa.Column('decided_at', sa.DateTime(), nullable=True),
        sa.Column('decided_by', sa.String(length=200), nullable=False),
        sa.Column('reason', sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(['machine_id'], ['machines.id'],
                                name=op.f('fk_extension_requests_machine_id_machines'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_extension_requests_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_extension_requests')))
    op.create_index('ix_extension_requests_machine_id', 'extension_requests', ['machine_id'])
    op.create_index('ix_extension_requests_status', 'extension_requests', ['status'])
    op.create_table(
        'notifications',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('machine_id', sa.String(length=32), nullable=True),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('recipient', sa.String(length=200), nullable=False),
        sa.Column('subject', sa.String(length=300), nullable=False),
        sa.Column('body', sa.Text(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('sent_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['machine_id'], ['machines.id'],
                                name=op.f('fk_notifications_machine_id_machines'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_notifications_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_notifications')),
        sa.UniqueConstraint('key', name=op.f('uq_notifications_key')))
    op.create_index('ix_notifications_machine_id', 'notifications', ['machine_id'])
    op.create_index('ix_notifications_status_id', 'notifications', ['status', 'id'])
    with op.batch_alter_table('machines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('desktop_seen_at', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('machines', schema=None) as batch_op:
        batch_op.drop_column('desktop_seen_at')
    op.drop_index('ix_notifications_status_id', table_name='notifications')
    op.drop_index('ix_notifications_machine_id', table_name='notifications')
    op.drop_table('notifications')
    op.drop_index('ix_extension_requests_status', table_name='extension_requests')
    op.drop_index('ix_extension_requests_machine_id', table_name='extension_requests')
    op.drop_table('extension_requests')
