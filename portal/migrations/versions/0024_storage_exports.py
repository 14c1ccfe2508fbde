"""Exports of users' local storage to cloud VMs (cloud VMs issue).

Placeholder reserved so parallel work keeps one linear chain; it changes nothing yet.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-03 18:00:00.000000
"""
revision = '0024'
down_revision = '0023'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
