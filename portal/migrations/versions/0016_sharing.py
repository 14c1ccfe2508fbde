"""Machine members, roles and share links (sharing issue): ``machine_members``,
``share_links``, ``share_policies``, ``desktop_connections`` (the proxy's open connections),
and the role and link of each desktop token.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 14:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'machine_members',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('machine_id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('role', sa.String(length=10), nullable=False),
        sa.Column('invited_by', sa.String(length=200), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['machine_id'], ['machines.id'], ondelete='CASCADE',
                                name=op.f('fk_machine_members_machine_id_machines')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE',
                                name=op.f('fk_machine_members_user_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_machine_members')),
        sa.UniqueConstraint('machine_id', 'user_id',
                            name=op.f('uq_machine_members_machine_id')))
    op.create_index('ix_machine_members_user_id', 'machine_members', ['user_id'])
    op.create_table(
        'share_links',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('machine_id', sa.String(length=32), nullable=False),
        sa.Column('kind', sa.String(length=10), nullable=False),
        sa.Column('role', sa.String(length=10), nullable=False),
        sa.Column('secret_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=True),
        sa.Column('used_at', sa.DateTime(), nullable=True),
        sa.Column('used_by_id', sa.Integer(), nullable=True),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['machine_id'], ['machines.id'], ondelete='CASCADE',
                                name=op.f('fk_share_links_machine_id_machines')),
        sa.ForeignKeyConstraint(['used_by_id'], ['users.id'], ondelete='SET NULL',
                                name=op.f('fk_share_links_used_by_id_users')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_share_links')),
        sa.UniqueConstraint('secret_hash', name=op.f('uq_share_links_secret_hash')))
    op.create_index(op.f('ix_share_links_machine_id'), 'share_links', ['machine_id'])
    op.create_table(
        'desktop_connections',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('machine_id', sa.String(length=32), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('link_id', sa.Integer(), nullable=True),
        sa.Column('granted_role', sa.String(length=10), nullable=False),
        sa.Column('role', sa.String(length=10), nullable=False),
        sa.Column('ended', sa.String(length=200), nullable=False),
        sa.Column('opened_at', sa.DateTime(), nullable=False),
        sa.Column('seen_at', sa.DateTime(), nullable=False),
        sa.Column('closed_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['machine_id'], ['machines.id'], ondelete='CASCADE',
                                name=op.f('fk_desktop_connections_machine_id_machines')),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], ondelete='CASCADE',
                                name=op.f('fk_desktop_connections_user_id_users')),
        sa.ForeignKeyConstraint(['link_id'], ['share_links.id'], ondelete='SET NULL',
                                name=op.f('fk_desktop_connections_link_id_share_links')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_desktop_connections')))
    op.create_index('ix_desktop_connections_machine_closed', 'desktop_connections',
                    ['machine_id', 'closed_at'])
    op.create_table(
        'share_policies',
        sa.Column('machine_id', sa.String(length=32), nullable=False),
        sa.Column('owner_away', sa.String(length=12), nullable=False),
        sa.ForeignKeyConstraint(['machine_id'], ['machines.id'], ondelete='CASCADE',
                                name=op.f('fk_share_policies_machine_id_machines')),
        sa.PrimaryKeyConstraint('machine_id', name=op.f('pk_share_policies')))
    with op.batch_alter_table('access_tokens') as batch:
        batch.add_column(sa.Column('role', sa.String(length=10), nullable=False,
                                   server_default='owner'))
        batch.add_column(sa.Column('link_id', sa.Integer(), nullable=True))
        batch.create_foreign_key(op.f('fk_access_tokens_link_id_share_links'), 'share_links',
                                 ['link_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('access_tokens') as batch:
        batch.drop_constraint(op.f('fk_access_tokens_link_id_share_links'), type_='foreignkey')
        batch.drop_column('link_id')
        batch.drop_column('role')
    op.drop_table('share_policies')
    op.drop_index('ix_desktop_connections_machine_closed', table_name='desktop_connections')
    op.drop_table('desktop_connections')
    op.drop_index(op.f('ix_share_links_machine_id'), table_name='share_links')
    op.drop_table('share_links')
    op.drop_index('ix_machine_members_user_id', table_name='machine_members')
    op.drop_table('machine_members')
