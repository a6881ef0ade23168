"""verify reports and stream health

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-01
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0002'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('stream_health',
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('advanced_at', sa.DateTime(), nullable=True),
    sa.Column('run_at', sa.DateTime(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('instance', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('stream')
    )
    op.create_table('verify_report',
    sa.Column('id', _ID, nullable=False),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('finished_at', sa.DateTime(), nullable=True),
    sa.Column('complete', sa.Boolean(), nullable=False),
    sa.Column('repaired', sa.Boolean(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=True),
    sa.Column('samples', sa.JSON(), nullable=True),
    sa.Column('notes', sa.JSON(), nullable=True),
    sa.Column('requests', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('verify_report', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_verify_report_started_at'), ['started_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('verify_report', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_verify_report_started_at'))
    op.drop_table('verify_report')
    op.drop_table('stream_health')
