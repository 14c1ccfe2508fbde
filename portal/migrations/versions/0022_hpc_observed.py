"""What the worker last observed of Slurm jobs and ICAT experiments (scale issue).

Placeholder reserved so parallel work keeps one linear chain; it changes nothing yet.

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-03 18:00:00.000000
"""
revision = '0022'
down_revision = '0021'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
