"""stream alerts: future change times and rows change detection cannot see

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa

from syncd.store.migrations import _ddl


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    _ddl.create_table('stream_alert',
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    _ddl.json('sample'),
    _ddl.time('at'),
    sa.PrimaryKeyConstraint('stream', 'kind'))


def downgrade() -> None:
    _ddl.drop_table('stream_alert')
