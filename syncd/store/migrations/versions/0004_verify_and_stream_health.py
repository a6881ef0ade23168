"""verify reports and stream health

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa

from syncd.store.migrations import _ddl


revision = '0004'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    _ddl.create_table('stream_health',
    sa.Column('stream', sa.String(length=64), nullable=False),
    _ddl.time('advanced_at'),
    _ddl.time('run_at'),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('instance', sa.String(length=128), nullable=True),
    sa.PrimaryKeyConstraint('stream'))
    _ddl.create_table('verify_report',
    _ddl.big_id('id'),
    _ddl.time('started_at'),
    _ddl.time('finished_at'),
    sa.Column('complete', sa.Boolean(), nullable=False),
    sa.Column('repaired', sa.Boolean(), nullable=False),
    _ddl.json('counts'),
    _ddl.json('samples'),
    _ddl.json('notes'),
    _ddl.json('requests'),
    sa.PrimaryKeyConstraint('id'),
    indexed=['started_at'])


def downgrade() -> None:
    _ddl.drop_table('verify_report', indexed=['started_at'])
    _ddl.drop_table('stream_health')
