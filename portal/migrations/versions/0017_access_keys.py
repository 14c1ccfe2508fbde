"""SSH public keys and single-use RDP sign-in nonces (cloud-VM issue).

Placeholder reserved so parallel work keeps one linear chain; it changes nothing yet.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 14:30:00.000000
"""
revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
