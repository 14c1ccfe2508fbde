"""Reconciler and list indexes (scale issue).

Placeholder reserved so parallel work keeps one linear chain; it changes nothing yet.

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 18:00:00.000000
"""
revision = '0025'
down_revision = '0024'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
