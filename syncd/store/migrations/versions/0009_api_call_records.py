"""api_call.records: the ids of the records each API request was for (syncd journal, trace)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_call') as batch:
        batch.add_column(sa.Column('records', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_call') as batch:
        batch.drop_column('records')
