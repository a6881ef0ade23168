"""`syncd once` shows progress on a terminal, and nothing when stderr is not one."""

from __future__ import annotations

import io
import time

from sqlalchemy import insert

from syncd.progress import CycleProgress
from syncd.store import open_store
from syncd.store.tables import Link


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_status_line_on_a_terminal_only(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}", create=True)
    with store.begin() as conn:
        conn.execute(insert(Link.__table__), [{"entity": "contact", "crm_id": str(i)} for i in range(3)])
    tty, pipe = _Tty(), io.StringIO()
    with CycleProgress(store, tty, every=0.05):
        time.sleep(0.3)
    with CycleProgress(store, pipe, every=0.05):
        time.sleep(0.2)
    store.close()
    assert "\rsyncd: 3 contacts known · 0 operations done, 0 waiting" in tty.getvalue()
    assert tty.getvalue().endswith("\r\x1b[K")
    assert pipe.getvalue() == ""
