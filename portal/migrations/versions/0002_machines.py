"""Machines, their events and one-time access tokens.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 23:43:32.680320
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('machines',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('environment_name', sa.String(length=64), nullable=False),
    sa.Column('environment', sa.JSON(), nullable=False),
    sa.Column('flavor', sa.String(length=100), nullable=False),
    sa.Column('provider', sa.String(length=32), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('error_reason', sa.Text(), nullable=False),
    sa.Column('cleanup_pending', sa.Boolean(), nullable=False),
    sa.Column('experiment_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('state_changed_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_machines_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_machines'))
    )
    with op.batch_alter_table('machines', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_machines_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_machines_user_id'), ['user_id'], unique=False)

    op.create_table('access_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('machine_id', sa.String(length=32), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('secret_hash', sa.String(length=64), nullable=False),
    sa.Column('host', sa.String(length=255), nullable=False),
    sa.Column('port', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['machine_id'], ['machines.id'], name=op.f('fk_access_tokens_machine_id_machines'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_access_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_access_tokens')),
    sa.UniqueConstraint('secret_hash', name=op.f('uq_access_tokens_secret_hash'))
    )
    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_access_tokens_machine_id'), ['machine_id'], unique=False)

    op.create_table('machine_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('machine_id', sa.String(length=32), nullable=False),
    sa.Column('from_state', sa.String(length=20), nullable=True),
    sa.Column('to_state', sa.String(length=20), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['machine_id'], ['machines.id'], name=op.f('fk_machine_events_machine_id_machines'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_machine_events'))
    )
    with op.batch_alter_table('machine_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_machine_events_machine_id'), ['machine_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('machine_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_machine_events_machine_id'))

    op.drop_table('machine_events')
    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_access_tokens_machine_id'))

    op.drop_table('access_tokens')
    with op.batch_alter_table('machines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_machines_user_id'))
        batch_op.drop_index(batch_op.f('ix_machines_state'))

    op.drop_table('machines')
