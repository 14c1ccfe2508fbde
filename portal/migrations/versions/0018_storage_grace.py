"""Home-folder grace period and restore (lifetimes issue).

Placeholder reserved so parallel work keeps one linear chain; it changes nothing yet.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 14:30:00.000000
"""
revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
