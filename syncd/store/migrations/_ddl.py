"""The column kinds and the table-with-indexes shape the migrations share.

Frozen like the migrations themselves: what a function here emits is part of every revision
that calls it, so its output never changes (the schema of an old revision must not depend on
when syncd was installed). A migration needing another shape writes it out or adds a function.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

__all__ = ["ID", "big_id", "time", "json", "create_table", "drop_table"]

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit column.
ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def big_id(name: str, *, nullable: bool = False) -> sa.Column:
    """A row id, or a reference to one (``link_id``)."""
    return sa.Column(name, ID, nullable=nullable)


def time(name: str) -> sa.Column:
    """A time (naive UTC; the application makes it aware), NULL when unknown."""
    return sa.Column(name, sa.DateTime(), nullable=True)


def json(name: str) -> sa.Column:
    """A JSON value, NULL when there is none."""
    return sa.Column(name, sa.JSON(), nullable=True)


def create_table(name: str, *columns: sa.schema.SchemaItem, indexed: Sequence[str] = ()) -> None:
    """Table ``name`` and, for each column in ``indexed``, the index ``ix_<name>_<column>``."""
    op.create_table(name, *columns)
    if indexed:
        with op.batch_alter_table(name, schema=None) as batch_op:
            for column in indexed:
                batch_op.create_index(batch_op.f(f'ix_{name}_{column}'), [column], unique=False)


def drop_table(name: str, *, indexed: Sequence[str] = ()) -> None:
    """Undo :func:`create_table`: its indexes (last first), then the table."""
    if indexed:
        with op.batch_alter_table(name, schema=None) as batch_op:
            for column in reversed(indexed):
                batch_op.drop_index(batch_op.f(f'ix_{name}_{column}'))
    op.drop_table(name)
