"""Property: whatever the ties in updated_at and the page size, a walk returns each row once."""

from __future__ import annotations

import tempfile
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.sql import SqlConnector, SqlOptions
from syncd.model import Cursor
from syncd.testing.context import connector_context

BASE = datetime(2025, 1, 1)


@settings(max_examples=60, deadline=None)
@given(stamps=st.lists(st.integers(0, 3), min_size=0, max_size=25), limit=st.integers(1, 6),
       restart_every=st.integers(1, 4))
def test_a_walk_returns_each_row_once_in_order(stamps, limit, restart_every):
    with tempfile.TemporaryDirectory() as d:
        url = f"sqlite:///{Path(d) / 'crm.db'}"
        table = sa.Table("contacts", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
                         sa.Column("phone", sa.String(40)), sa.Column("updated_at", sa.DateTime))
        engine = sa.create_engine(url)
        table.create(engine)
        with engine.begin() as conn:
            for i, s in enumerate(stamps, start=1):
                conn.execute(table.insert().values(id=i, updated_at=BASE + timedelta(seconds=s)))
        engine.dispose()
        seen, cursor, connector, pages = [], Cursor(), None, 0
        while True:
            if connector is None or pages % restart_every == 0:  # a restart keeps only the cursor
                if connector is not None:
                    connector.close()
                connector = SqlConnector(SqlOptions(url=url), connector_context(Path(d) / "s"))
            page = connector.changed_contacts(cursor, limit)
            pages += 1
            seen += [(c.updated_at, int(c.id)) for c in page.contacts]
            cursor = page.next
            if not page.more:
                break
        connector.close()
        assert [i for _, i in seen] == [i for _, i in sorted(seen)]
        assert sorted(i for _, i in seen) == list(range(1, len(stamps) + 1))
