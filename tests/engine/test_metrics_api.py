"""/metrics answers "what did the API cost today?": requests per operation and status from
the journal (every instance), the budget in force and the day's spend; and the journal tells
the daemon's own counters of each request at once."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import insert

from syncd.engine.build import build_syncer
from syncd.model import JournalEntry
from syncd.store import open_store
from syncd.store.tables import ApiCall
from syncd.web import Metrics

from .conftest import make_config


@pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
def test_metrics_show_todays_requests_per_operation_budget_and_spend(state_url, tmp_path):
    open_store(state_url, create=True).close()
    config = make_config(state_url, okitoki={"url": "http://127.0.0.1:9", "api_token": "tok-123456",
                                             "daily_request_budget": 5000, "price_per_request": 0.25},
                         crm={"connector": "sql", "options": {"url": f"sqlite:///{tmp_path / 'crm.db'}"}})
    syncer = build_syncer(config, state_dir=tmp_path / "s", instance_id="m")
    try:
        now = datetime.now(UTC)
        row = dict(at=now, system="okitoki", method="POST", duration_ms=5, attempt=1, error=None)
        with syncer.store.begin() as conn:
            conn.execute(insert(ApiCall.__table__), [
                {**row, "operation": "create_task", "status": 200},
                {**row, "operation": "create_task", "status": 200},
                {**row, "operation": "call_log", "status": 429}])
        for _ in range(3):
            syncer.ctx.budget.spend("okitoki")
        syncer.ctx.budget.release()      # reservations given back: exactly 3 spent
        metrics = Metrics(syncer)
        syncer.api_journal.listeners.append(metrics.observe_api)
        syncer.api_journal(JournalEntry(at=now, system="crm", operation="upsert_contacts",
                                        method="POST", status=200, duration_ms=3, attempt=1))
        text = metrics.render().decode()
        assert 'syncd_api_operation_requests_today{operation="create_task",status="200",system="okitoki"} 2.0' in text
        assert 'syncd_api_operation_requests_today{operation="call_log",status="429",system="okitoki"} 1.0' in text
        assert 'syncd_api_requests_total{operation="upsert_contacts",status="200",system="crm"} 1.0' in text
        assert 'syncd_api_spend_today{system="okitoki"} 0.75' in text
        assert 'syncd_api_budget_today{system="okitoki"} 5000.0' in text
    finally:
        syncer.close()
