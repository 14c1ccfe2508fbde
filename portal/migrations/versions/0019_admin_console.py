"""Disabled accounts and admin action reasons (operations issue).

Placeholder reserved so parallel work keeps one linear chain; it changes nothing yet.

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 14:30:00.000000
"""
revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
