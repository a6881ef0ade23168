"""latency samples: source change → effect, per flow, for syncd status

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-01
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

from syncd.store.migrations import _ddl


revision = '0008'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    _ddl.create_table('latency_sample',
    _ddl.big_id('id'),
    sa.Column('flow', sa.String(length=32), nullable=False),
    _ddl.time('at'),
    sa.Column('seconds', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id'))
    op.create_index('ix_latency_sample_flow_at', 'latency_sample', ['flow', 'at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_latency_sample_flow_at', table_name='latency_sample')
    _ddl.drop_table('latency_sample')
