"""The append-only audit trail (operations issue).

Placeholder reserved so parallel work keeps one linear chain; it changes nothing yet.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 14:30:00.000000
"""
revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
