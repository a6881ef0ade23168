"""Every command survives a closed pipe: `syncd dead-letters list | head` ends quietly."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

from sqlalchemy import insert

from syncd.store import open_store
from syncd.store.tables import Outbox
from syncd.testing.scenario import to_toml


def test_dead_letters_list_into_head_ends_without_a_traceback(tmp_path):
    state = f"sqlite:///{tmp_path / 'state.db'}"
    store = open_store(state, create=True)
    now = datetime.now(UTC)
    with store.begin() as conn:
        conn.execute(insert(Outbox.__table__), [
            {"lane": 4, "target": "okitoki", "operation": "contact_update", "idem_key": f"k{i}",
             "status": "dead", "attempts": 3, "payload": {"values": {"name": "x" * 200}},
             "last_error": "refused", "created_at": now, "updated_at": now} for i in range(3000)])
    store.close()
    cfg = tmp_path / "config.toml"
    cfg.write_text(to_toml({
        "daemon": {"state_url": state},
        "okitoki": {"url": "http://127.0.0.1:9", "api_token": "tok-123456"},
        "crm": {"connector": "sql", "options": {"url": f"sqlite:///{tmp_path / 'crm.db'}"}},
    }))
    proc = subprocess.Popen([sys.executable, "-m", "syncd.cli", "dead-letters", "list", "-c", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.readline()
    proc.stdout.close()          # what `head -1` does once it has its line
    _, err = proc.communicate(timeout=60)
    assert first
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()[-2000:]
    assert proc.returncode == 141
