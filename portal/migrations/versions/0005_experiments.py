"""ICAT-core experiment tables; machines record their experiment.

Revision ID: 0005
Revises: 0003
Create Date: 2026-11-22 00:19:21.882709
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('icat_facility',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('full_name', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_icat_facility')),
    sa.UniqueConstraint('name', name=op.f('uq_icat_facility_name'))
    )
    op.create_table('icat_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('full_name', sa.String(length=255), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_icat_user')),
    sa.UniqueConstraint('name', name=op.f('uq_icat_user_name'))
    )
    op.create_table('icat_instrument',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('facility_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('full_name', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['facility_id'], ['icat_facility.id'], name=op.f('fk_icat_instrument_facility_id_icat_facility')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_icat_instrument')),
    sa.UniqueConstraint('facility_id', 'name', name=op.f('uq_icat_instrument_facility_id'))
    )
    op.create_table('icat_investigation',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('facility_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('visit_id', sa.String(length=255), nullable=False),
    sa.Column('title', sa.String(length=255), nullable=False),
    sa.Column('start_date', sa.DateTime(), nullable=True),
    sa.Column('end_date', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['facility_id'], ['icat_facility.id'], name=op.f('fk_icat_investigation_facility_id_icat_facility')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_icat_investigation')),
    sa.UniqueConstraint('facility_id', 'name', 'visit_id', name=op.f('uq_icat_investigation_facility_id'))
    )
    op.create_table('icat_dataset',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('investigation_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('location', sa.Text(), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['investigation_id'], ['icat_investigation.id'], name=op.f('fk_icat_dataset_investigation_id_icat_investigation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_icat_dataset')),
    sa.UniqueConstraint('investigation_id', 'name', name=op.f('uq_icat_dataset_investigation_id'))
    )
    with op.batch_alter_table('icat_dataset', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_icat_dataset_investigation_id'), ['investigation_id'], unique=False)

    op.create_table('icat_instrument_scientist',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('instrument_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['instrument_id'], ['icat_instrument.id'], name=op.f('fk_icat_instrument_scientist_instrument_id_icat_instrument')),
    sa.ForeignKeyConstraint(['user_id'], ['icat_user.id'], name=op.f('fk_icat_instrument_scientist_user_id_icat_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_icat_instrument_scientist')),
    sa.UniqueConstraint('instrument_id', 'user_id', name=op.f('uq_icat_instrument_scientist_instrument_id'))
    )
    with op.batch_alter_table('icat_instrument_scientist', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_icat_instrument_scientist_instrument_id'), ['instrument_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_icat_instrument_scientist_user_id'), ['user_id'], unique=False)

    op.create_table('icat_investigation_instrument',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('investigation_id', sa.Integer(), nullable=False),
    sa.Column('instrument_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['instrument_id'], ['icat_instrument.id'], name=op.f('fk_icat_investigation_instrument_instrument_id_icat_instrument')),
    sa.ForeignKeyConstraint(['investigation_id'], ['icat_investigation.id'], name=op.f('fk_icat_investigation_instrument_investigation_id_icat_investigation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_icat_investigation_instrument')),
    sa.UniqueConstraint('investigation_id', 'instrument_id', name=op.f('uq_icat_investigation_instrument_investigation_id'))
    )
    with op.batch_alter_table('icat_investigation_instrument', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_icat_investigation_instrument_investigation_id'), ['investigation_id'], unique=False)

    op.create_table('icat_investigation_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('investigation_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=255), nullable=False),
    sa.ForeignKeyConstraint(['investigation_id'], ['icat_investigation.id'], name=op.f('fk_icat_investigation_user_investigation_id_icat_investigation')),
    sa.ForeignKeyConstraint(['user_id'], ['icat_user.id'], name=op.f('fk_icat_investigation_user_user_id_icat_user')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_icat_investigation_user')),
    sa.UniqueConstraint('investigation_id', 'user_id', 'role', name=op.f('uq_icat_investigation_user_investigation_id'))
    )
    with op.batch_alter_table('icat_investigation_user', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_icat_investigation_user_investigation_id'), ['investigation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_icat_investigation_user_user_id'), ['user_id'], unique=False)

    op.create_table('icat_datafile',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('location', sa.Text(), nullable=False),
    sa.Column('file_size', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['dataset_id'], ['icat_dataset.id'], name=op.f('fk_icat_datafile_dataset_id_icat_dataset')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_icat_datafile')),
    sa.UniqueConstraint('dataset_id', 'name', name=op.f('uq_icat_datafile_dataset_id'))
    )
    with op.batch_alter_table('icat_datafile', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_icat_datafile_dataset_id'), ['dataset_id'], unique=False)

    with op.batch_alter_table('machines', schema=None) as batch_op:
        batch_op.add_column(sa.Column('experiment', sa.JSON(), nullable=True))
        batch_op.create_index(batch_op.f('ix_machines_experiment_id'), ['experiment_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('machines', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_machines_experiment_id'))
        batch_op.drop_column('experiment')

    with op.batch_alter_table('icat_datafile', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_icat_datafile_dataset_id'))

    op.drop_table('icat_datafile')
    with op.batch_alter_table('icat_investigation_user', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_icat_investigation_user_user_id'))
        batch_op.drop_index(batch_op.f('ix_icat_investigation_user_investigation_id'))

    op.drop_table('icat_investigation_user')
    with op.batch_alter_table('icat_investigation_instrument', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_icat_investigation_instrument_investigation_id'))

    op.drop_table('icat_investigation_instrument')
    with op.batch_alter_table('icat_instrument_scientist', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_icat_instrument_scientist_user_id'))
        batch_op.drop_index(batch_op.f('ix_icat_instrument_scientist_instrument_id'))

    op.drop_table('icat_instrument_scientist')
    with op.batch_alter_table('icat_dataset', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_icat_dataset_investigation_id'))

    op.drop_table('icat_dataset')
    op.drop_table('icat_investigation')
    op.drop_table('icat_instrument')
    op.drop_table('icat_user')
    op.drop_table('icat_facility')
