"""Warm-pool schedules and sizes set by admins (instant desktops issue).

Placeholder reserved so parallel work keeps one linear chain; it changes nothing yet.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-03 18:00:00.000000
"""
revision = '0023'
down_revision = '0022'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
