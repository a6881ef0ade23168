"""initial schema

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-27
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

from syncd.store.migrations import _ddl


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    _ddl.create_table('api_call',
    _ddl.big_id('id'),
    _ddl.time('at'),
    sa.Column('system', sa.String(length=16), nullable=False),
    sa.Column('operation', sa.String(length=64), nullable=False),
    sa.Column('method', sa.String(length=8), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    indexed=['at'])
    _ddl.create_table('base',
    _ddl.big_id('link_id'),
    _ddl.json('agreed'),
    _ddl.json('crm'),
    _ddl.json('okitoki'),
    _ddl.time('crm_updated_at'),
    _ddl.time('okitoki_updated_at'),
    _ddl.time('crm_written_at'),
    _ddl.time('okitoki_written_at'),
    sa.PrimaryKeyConstraint('link_id'))
    _ddl.create_table('budget',
    sa.Column('system', sa.String(length=16), nullable=False),
    sa.Column('day', sa.String(length=10), nullable=False),
    sa.Column('used', sa.Integer(), nullable=False),
    sa.Column('daily_limit', sa.Integer(), nullable=True),
    sa.PrimaryKeyConstraint('system', 'day'))
    _ddl.create_table('call',
    sa.Column('session_id', sa.String(length=64), nullable=False),
    _ddl.big_id('link_id', nullable=True),
    sa.Column('phone', sa.String(length=32), nullable=True),
    _ddl.time('started_at'),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('crm_activity_id', sa.String(length=128), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    _ddl.time('created_at'),
    sa.PrimaryKeyConstraint('session_id'))
    _ddl.create_table('conflict',
    _ddl.big_id('id'),
    _ddl.big_id('link_id'),
    sa.Column('field', sa.String(length=128), nullable=False),
    _ddl.json('base'),
    _ddl.json('crm_value'),
    _ddl.json('okitoki_value'),
    sa.Column('rule', sa.String(length=16), nullable=False),
    sa.Column('winner', sa.String(length=16), nullable=False),
    _ddl.time('at'),
    sa.Column('resolved', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    indexed=['link_id', 'resolved'])
    _ddl.create_table('cursor',
    sa.Column('stream', sa.String(length=64), nullable=False),
    _ddl.time('value'),
    sa.Column('last_id', sa.String(length=128), nullable=True),
    _ddl.json('boundary_ids'),
    _ddl.time('updated_at'),
    sa.PrimaryKeyConstraint('stream'))
    _ddl.create_table('dirty',
    _ddl.big_id('link_id'),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('link_id'))
    _ddl.create_table('lease',
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('holder', sa.String(length=128), nullable=False),
    _ddl.time('expires_at'),
    sa.PrimaryKeyConstraint('name'))
    _ddl.create_table('link',
    _ddl.big_id('id'),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('crm_id', sa.String(length=128), nullable=True),
    sa.Column('okitoki_id', sa.String(length=128), nullable=True),
    sa.Column('tombstone', sa.Boolean(), nullable=False),
    sa.Column('hold', sa.String(length=32), nullable=True),
    _ddl.time('created_at'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('entity', 'crm_id', name='uq_link_crm'),
    sa.UniqueConstraint('entity', 'okitoki_id', name='uq_link_okitoki'))
    _ddl.create_table('link_phone',
    sa.Column('phone', sa.String(length=32), nullable=False),
    _ddl.big_id('link_id'),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.PrimaryKeyConstraint('phone', 'link_id', 'side'),
    indexed=['link_id'])
    _ddl.create_table('merge_candidate',
    _ddl.big_id('id'),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('record_id', sa.String(length=128), nullable=False),
    sa.Column('phone', sa.String(length=32), nullable=True),
    _ddl.json('candidates'),
    _ddl.time('at'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('side', 'record_id', name='uq_merge_candidate'))
    _ddl.create_table('outbox',
    _ddl.big_id('id'),
    sa.Column('lane', sa.Integer(), nullable=False),
    sa.Column('target', sa.String(length=16), nullable=False),
    sa.Column('operation', sa.String(length=32), nullable=False),
    _ddl.big_id('link_id', nullable=True),
    _ddl.json('payload'),
    sa.Column('idem_key', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    _ddl.time('next_attempt_at'),
    sa.Column('claimed_by', sa.String(length=128), nullable=True),
    _ddl.time('claimed_until'),
    sa.Column('last_error', sa.Text(), nullable=True),
    _ddl.time('created_at'),
    _ddl.time('updated_at'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idem_key'))
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index('ix_outbox_claim', ['status', 'lane', 'next_attempt_at'], unique=False)
        batch_op.create_index('ix_outbox_link', ['link_id', 'status'], unique=False)
    _ddl.create_table('run',
    _ddl.big_id('id'),
    sa.Column('job', sa.String(length=64), nullable=False),
    sa.Column('instance', sa.String(length=128), nullable=True),
    _ddl.time('started_at'),
    sa.Column('duration_ms', sa.Integer(), nullable=False),
    _ddl.json('counts'),
    _ddl.json('errors'),
    sa.PrimaryKeyConstraint('id'),
    indexed=['job', 'started_at'])
    _ddl.create_table('task',
    _ddl.big_id('id'),
    _ddl.big_id('link_id'),
    sa.Column('dialer_id', sa.String(length=32), nullable=False),
    sa.Column('rule', sa.String(length=128), nullable=False),
    sa.Column('task_id', sa.String(length=64), nullable=True),
    _ddl.json('phones'),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('generation', sa.Integer(), nullable=False),
    _ddl.time('updated_at'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('link_id', 'dialer_id', name='uq_task_link_dialer'),
    indexed=['task_id'])


def downgrade() -> None:
    _ddl.drop_table('task', indexed=['task_id'])
    _ddl.drop_table('run', indexed=['job', 'started_at'])
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_link')
        batch_op.drop_index('ix_outbox_claim')
    _ddl.drop_table('outbox')
    _ddl.drop_table('merge_candidate')
    _ddl.drop_table('link_phone', indexed=['link_id'])
    _ddl.drop_table('link')
    _ddl.drop_table('lease')
    _ddl.drop_table('dirty')
    _ddl.drop_table('cursor')
    _ddl.drop_table('conflict', indexed=['link_id', 'resolved'])
    _ddl.drop_table('call')
    _ddl.drop_table('budget')
    _ddl.drop_table('base')
    _ddl.drop_table('api_call', indexed=['at'])
