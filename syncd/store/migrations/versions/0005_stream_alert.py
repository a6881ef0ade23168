"""stream alerts: future change times and rows change detection cannot see

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('stream_alert',
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('sample', sa.JSON(), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('stream', 'kind')
    )


def downgrade() -> None:
    op.drop_table('stream_alert')
