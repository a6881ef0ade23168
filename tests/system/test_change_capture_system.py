"""Issue 8 as a new user meets it: `syncd run` as a subprocess, the sandbox in its own process,
a SQLite CRM table written the usual way (`DEFAULT CURRENT_TIMESTAMP`, whole seconds). A bulk
import of 1,200 leads in one second, a row stamped 2099, a row that is not UTF-8 and one with
no change time: every lead gets its dialer task, later changes still arrive, the bad rows are
quarantined or reported, and `syncd status` says so."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

from .harness import deploy, stop

pytestmark = pytest.mark.slow


def _pending(sb, dialer=101):
    return [t for t in sb.state()["tasks"] if t["dialer_id"] == dialer and t["status"] == "pending"]


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(1.0)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_bulk_import_a_future_row_and_bad_rows_through_the_daemon(tmp_path, sandbox_proc):
    sb = sandbox_proc
    db = sqlite3.connect(tmp_path / "crm.db", isolation_level=None)
    db.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, name VARCHAR(200) NOT NULL, phone VARCHAR(64), "
               "phone2 VARCHAR(64), email VARCHAR(200), status VARCHAR(32) NOT NULL DEFAULT 'new', "
               "do_not_call BOOLEAN NOT NULL DEFAULT 0, updated_at DATETIME DEFAULT CURRENT_TIMESTAMP)")
    db.execute("CREATE INDEX ix_contacts_updated_at ON contacts (updated_at)")
    dep = deploy(tmp_path, sb, [])
    db.execute("WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 1199) "
               "INSERT INTO contacts (name, phone) SELECT 'Lead ' || i, '+38067' || printf('%07d', i) FROM n")
    db.execute("INSERT INTO contacts (name, phone, updated_at) VALUES ('Time Traveller', '+380501110001', "
               "'2099-01-01 00:00:00')")
    db.execute("INSERT INTO contacts (name, phone) VALUES (CAST(X'4f6c65ff' AS TEXT), '+380501110002')")
    db.execute("INSERT INTO contacts (name, phone, updated_at) VALUES ('No Time', '+380501110003', NULL)")
    proc = dep.start()
    try:
        _wait(lambda: len(_pending(sb)) >= 1201, 240, "1,201 dialer tasks")
        assert len(_pending(sb)) == 1201
        db.execute("UPDATE contacts SET name = 'Lead Renamed', updated_at = CURRENT_TIMESTAMP WHERE id = 7")
        _wait(lambda: any(c["name"] == "Lead Renamed" for c in sb.state()["contacts"]), 60,
              "a change made after the 2099 row")
        status = json.loads(dep.syncd("status", "--json").stdout)
        alerts = {a["kind"]: a for a in status["alerts"]}
        assert alerts["future_time"]["count"] == 1 and alerts["untracked_null"]["count"] == 1
        assert status["cursors"]["crm:contacts"]["lag_s"] >= 0
        dead = json.loads(dep.syncd("dead-letters", "list", "--json").stdout)
        assert [d["key"].split(":")[2] for d in dead if d["operation"] == "ingest"] == ["1202"]
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    log = [json.loads(line) for line in (tmp_path / "syncd.log").read_text().splitlines() if line.startswith("{")]
    assert any(e["event"] == "change_time_in_future" and e["record_id"] == "1201" for e in log)
    assert any(e["event"] == "rows_without_change_time" for e in log)
