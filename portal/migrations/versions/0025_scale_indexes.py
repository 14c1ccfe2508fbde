"""Reconciler and list indexes (scale issue 19): a launch's admission at 10,000 machines.

The quota ledger counts the live machines per owner, flavor and state, and a launch counts the
owner's machines and reads the names they use. Each read now comes from an index alone: a
machine row holds its environment snapshot (often on SQLite's overflow pages), so reading
3,000 rows of one owner cost ~30 ms and the ledger's scan of 10,000 rows ~100 ms on SQLite;
from these indexes 0.4 ms and 2 ms. The worker's idle-stop check reads the ready machines'
times from an index alone too (it keeps each machine's idle timeout from the snapshot it read
once).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 18:00:00.000000
"""
import sqlalchemy as sa
from alembic import op

revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_machines_user_flavor_state', 'machines',
                    ['user_id', 'flavor', 'state'], unique=False)
    op.create_index('ix_machines_user_state_name', 'machines', ['user_id', 'state', 'name'],
                    unique=False)
    op.create_index('ix_machines_idle', 'machines',
                    ['state', 'id', 'state_changed_at', 'desktop_seen_at', 'pool'], unique=False)
    # the worker's look-up of ready machines without an address now leaves pooled ones out:
    # with pool in the partial index SQLite keeps choosing it (else it scans the ready rows)
    op.drop_index('ix_machines_unaddressed', table_name='machines')
    op.create_index('ix_machines_unaddressed', 'machines', ['state', 'pool'], unique=False,
                    sqlite_where=sa.text('address IS NULL'),
                    postgresql_where=sa.text('address IS NULL'))


def downgrade() -> None:
    op.drop_index('ix_machines_unaddressed', table_name='machines')
    op.create_index('ix_machines_unaddressed', 'machines', ['state'], unique=False,
                    sqlite_where=sa.text('address IS NULL'),
                    postgresql_where=sa.text('address IS NULL'))
    op.drop_index('ix_machines_idle', table_name='machines')
    op.drop_index('ix_machines_user_state_name', table_name='machines')
    op.drop_index('ix_machines_user_flavor_state', table_name='machines')
