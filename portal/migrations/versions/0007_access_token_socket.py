"""Desktop tokens may point at a Unix socket (access_tokens.socket_path).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 07:40:00.000000
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('socket_path', sa.String(length=1024), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('access_tokens', schema=None) as batch_op:
        batch_op.drop_column('socket_path')
