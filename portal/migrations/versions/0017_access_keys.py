"""SSH public keys and single-use RDP sign-in nonces (cloud-VM issue).

``ssh_keys``: the public keys users keep on their profile (unique per user by fingerprint).
``rdp_sign_ins``: one row per RDP sign-in token issued (its nonce, machine, user, expiry), never
the token itself; the VM enforces the single use, the portal keeps the record.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 14:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'ssh_keys',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('name', sa.String(length=100), nullable=False),
        sa.Column('key_type', sa.String(length=64), nullable=False),
        sa.Column('bits', sa.Integer(), nullable=False),
        sa.Column('public_key', sa.Text(), nullable=False),
        sa.Column('fingerprint', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_ssh_keys_user_id_users'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_ssh_keys')),
        sa.UniqueConstraint('user_id', 'fingerprint', name=op.f('uq_ssh_keys_user_id')))
    op.create_index(op.f('ix_ssh_keys_user_id'), 'ssh_keys', ['user_id'])
    op.create_table(
        'rdp_sign_ins',
        sa.Column('nonce', sa.String(length=32), nullable=False),
        sa.Column('machine_id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('issued_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['machine_id'], ['machines.id'],
                                name=op.f('fk_rdp_sign_ins_machine_id_machines'),
                                ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'],
                                name=op.f('fk_rdp_sign_ins_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('nonce', name=op.f('pk_rdp_sign_ins')))
    op.create_index(op.f('ix_rdp_sign_ins_machine_id'), 'rdp_sign_ins', ['machine_id'])


def downgrade() -> None:
    op.drop_index(op.f('ix_rdp_sign_ins_machine_id'), table_name='rdp_sign_ins')
    op.drop_table('rdp_sign_ins')
    op.drop_index(op.f('ix_ssh_keys_user_id'), table_name='ssh_keys')
    op.drop_table('ssh_keys')
