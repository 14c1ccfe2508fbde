"""Admin console: why and when an account was disabled, and the reason an administrator gave
for stopping or deleting a machine (shown to its owner on the machine's card and page).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 14:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disabled_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('disabled_reason', sa.Text(), nullable=False,
                                      server_default=''))
    with op.batch_alter_table('machines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('admin_reason', sa.Text(), nullable=False,
                                      server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('machines', schema=None) as batch_op:
        batch_op.drop_column('admin_reason')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('disabled_reason')
        batch_op.drop_column('disabled_at')
