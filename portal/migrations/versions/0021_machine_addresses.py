"""Machine addresses (issue 19): where the access paths reach a ready machine (host, VNC,
RDP and SSH ports, or a local socket), recorded by the worker when it observes the machine
ready, so the machine page and the .rdp download read it instead of asking the cloud. A
partial index holds only the ready machines still without one: the worker finds them without
reading every ready row.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 15:30:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0021'
down_revision = '0020'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('machines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('address', sa.JSON(), nullable=True))
    op.create_index('ix_machines_unaddressed', 'machines', ['state'], unique=False,
                    sqlite_where=sa.text('address IS NULL'),
                    postgresql_where=sa.text('address IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_machines_unaddressed', table_name='machines')
    with op.batch_alter_table('machines', schema=None) as batch_op:
        batch_op.drop_column('address')
