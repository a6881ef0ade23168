"""holds: floods of operations the guard keeps from being sent

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""
from __future__ import annotations

import sqlalchemy as sa

from syncd.store.migrations import _ddl


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    _ddl.create_table('hold',
    _ddl.big_id('id'),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('contacts', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    _ddl.time('created_at'),
    _ddl.time('decided_at'),
    sa.PrimaryKeyConstraint('id'))


def downgrade() -> None:
    _ddl.drop_table('hold')
