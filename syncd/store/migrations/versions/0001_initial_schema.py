"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-27
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('api_call',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=True),
    sa.Column('system', sa.String(length=16), nullable=False),
    sa.Column('operation', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('api_call', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_call_at'), ['at'], unique=False)

    op.create_table('base',
    sa.Column('link_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('agreed', sa.JSON(), nullable=True),
    sa.Column('crm', sa.JSON(), nullable=True),
    sa.Column('okitoki', sa.JSON(), nullable=True),
    sa.Column('crm_updated_at', sa.DateTime(), nullable=True),
    sa.Column('okitoki_updated_at', sa.DateTime(), nullable=True),
    sa.Column('crm_written_at', sa.DateTime(), nullable=True),
    sa.Column('okitoki_written_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('link_id')
    )
    op.create_table('budget',
    sa.Column('system', sa.String(length=16), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('used', sa.Integer(), nullable=False),
    sa.Column('daily_limit', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('system', 'day')
    )
    op.create_table('call',
    sa.Column('session_id', sa.String(length=64), nullable=False),
    sa.Column('link_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('crm_activity_id', sa.String(length=128), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('session_id')
    )
    op.create_table('conflict',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('link_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('field', sa.String(length=128), nullable=False),
    sa.Column('base', sa.JSON(), nullable=True),
    sa.Column('crm_value', sa.JSON(), nullable=True),
    sa.Column('okitoki_value', sa.JSON(), nullable=True),
    sa.Column('rule', sa.String(length=16), nullable=False),
    sa.Column('winner', sa.String(length=16), nullable=False),
    sa.Column('at', sa.DateTime(), nullable=True),
    sa.Column('resolved', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('conflict', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_conflict_link_id'), ['link_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_conflict_resolved'), ['resolved'], unique=False)

    op.create_table('cursor',
    sa.Column('stream', sa.String(length=64), nullable=False),
    sa.Column('value', sa.DateTime(), nullable=True),
    sa.Column('last_id', sa.String(length=128), nullable=True),
    sa.Column('boundary_ids', sa.JSON(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('stream')
    )
    op.create_table('dirty',
    sa.Column('link_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('link_id')
    )
    op.create_table('lease',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('name')
    )
    op.create_table('link',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('crm_id', sa.String(length=128), nullable=True),
    sa.Column('okitoki_id', sa.String(length=128), nullable=True),
    sa.Column('tombstone', sa.Boolean(), nullable=False),
    sa.Column('hold', sa.String(length=32), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('entity', 'crm_id', name='uq_link_crm'),
    sa.UniqueConstraint('entity', 'okitoki_id', name='uq_link_okitoki')
    )
    op.create_table('link_phone',
    sa.Column('phone', sa.String(length=32), nullable=False),
    sa.Column('link_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.PrimaryKeyConstraint('phone', 'link_id', 'side')
    )
    with op.batch_alter_table('link_phone', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_link_phone_link_id'), ['link_id'], unique=False)

    op.create_table('merge_candidate',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('record_id', sa.String(length=128), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    sa.Column('candidates', sa.JSON(), nullable=True),
    sa.Column('at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('side', 'record_id', name='uq_merge_candidate')
    )
    op.create_table('outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('lane', sa.Integer(), nullable=False),
    sa.Column('target', sa.String(length=16), nullable=False),
    sa.Column('operation', sa.String(length=32), nullable=False),
    sa.Column('link_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('idem_key', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('claimed_by', sa.String(length=128), nullable=True),
    sa.Column('claimed_until', sa.DateTime(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=True),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idem_key')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_claim', ['status', 'lane', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_outbox_link', ['link_id', 'status'], unique=False)

    op.create_table('run',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('job', sa.String(length=64), nullable=False),
    sa.Column('instance', sa.String(length=128), nullable=True),
    sa.Column('started_at', sa.DateTime(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('counts', sa.JSON(), nullable=True),
    sa.Column('errors', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_run_job'), ['job'], unique=False)
        batch_op.create_index(batch_op.f('ix_run_started_at'), ['started_at'], unique=False)

    op.create_table('task',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('link_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('dialer_id', sa.String(length=32), nullable=False),
    sa.Column('rule', sa.String(length=128), nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=True),
    sa.Column('phones', sa.JSON(), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('link_id', 'dialer_id', name='uq_task_link_dialer')
    )
    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_task_id'), ['task_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('task', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_task_id'))

    op.drop_table('task')
    with op.batch_alter_table('run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_run_started_at'))
        batch_op.drop_index(batch_op.f('ix_run_job'))

    op.drop_table('run')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_link')
        batch_op.drop_index('ix_outbox_claim')

    op.drop_table('outbox')
    op.drop_table('merge_candidate')
    with op.batch_alter_table('link_phone', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_link_phone_link_id'))

    op.drop_table('link_phone')
    op.drop_table('link')
    op.drop_table('lease')
    op.drop_table('dirty')
    op.drop_table('cursor')
    with op.batch_alter_table('conflict', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_conflict_resolved'))
        batch_op.drop_index(batch_op.f('ix_conflict_link_id'))

    op.drop_table('conflict')
    op.drop_table('call')
    op.drop_table('budget')
    op.drop_table('base')
    with op.batch_alter_table('api_call', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_call_at'))

    op.drop_table('api_call')

