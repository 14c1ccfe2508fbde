"""Machine members, roles and share links (sharing issue).

Placeholder reserved so parallel work keeps one linear chain; it changes nothing yet.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 14:30:00.000000
"""
revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
