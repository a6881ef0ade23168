"""A create in Oki-Toki is retried in place only when the answer proves nothing was made.

One client serves every Oki-Toki request; a create goes out with ``idempotent=False``
(``syncd.http``): a 429 with ``Retry-After`` is waited out and sent again at once, while a
timeout after sending goes back to the outbox, whose next try looks the record up first.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from syncd.engine.build import build_syncer
from syncd.store import open_store
from syncd.store.tables import Link, Outbox

from .conftest import make_config

LINK, OUTBOX = Link.__table__, Outbox.__table__
CREATE = "contacts/add-update"


def _named(sb, name: str) -> list[dict]:
    return [c for c in sb.state()["contacts"] if c["name"] == name]


def _create_row(syncer):
    with syncer.store.begin() as conn:
        return conn.execute(select(OUTBOX.c.status, OUTBOX.c.attempts, OUTBOX.c.link_id,
                                   OUTBOX.c.last_error).where(
            OUTBOX.c.target == "okitoki", OUTBOX.c.operation == "contact_create")).one()


def test_a_create_answered_429_with_retry_after_is_retried_at_once_and_made_once(world):
    syncer, sb, crm = world
    crm.add(("0672230001",), name="Throttled Once", status="won")
    syncer.pull_crm_contacts()
    sb.clear_requests()
    sb.set_faults([{"kind": "retry_after", "rate": 1, "count": 1, "seconds": 1,
                    "operations": [CREATE]}])
    report = syncer.push()
    assert not report.errors, report.errors
    assert len(_named(sb, "Throttled Once")) == 1
    requests = sb.requests()
    assert requests["by_operation"][CREATE] == 2 and requests["by_status"].get("429") == 1
    row = _create_row(syncer)
    assert (row.status, row.attempts) == ("done", 1)      # settled in this push, one try


def test_a_create_timed_out_after_sending_is_not_resent_but_looked_up(state_url, sandbox, crm,
                                                                      tmp_path):
    sb = sandbox
    open_store(state_url, create=True).close()
    shift = [timedelta(0)]
    config = make_config(state_url, sb.url, sb.token, okitoki__timeout="1s")
    syncer = build_syncer(config, crm=crm, state_dir=tmp_path / "crm", instance_id="test",
                          clock=lambda: datetime.now(UTC) + shift[0])
    try:
        crm.add(("0672230002",), name="Made Then Lost", status="won")
        syncer.pull_crm_contacts()
        sb.clear_requests()
        # Oki-Toki makes the contact, then the answer never comes in time.
        sb.set_faults([{"kind": "timeout", "rate": 1, "count": 1, "seconds": 2.5, "apply": True,
                        "operations": [CREATE]}])
        report = syncer.push()
        assert report.errors and "timed out" in report.errors[0]
        assert sb.requests()["by_operation"][CREATE] == 1           # not sent again in place
        row = _create_row(syncer)
        assert (row.status, row.attempts) == ("pending", 1)
        assert len(_named(sb, "Made Then Lost")) == 1
        deadline = time.monotonic() + 5     # let the held request finish inside this test
        while "504" not in sb.requests()["by_status"] and time.monotonic() < deadline:
            time.sleep(0.05)

        shift[0] = timedelta(minutes=10)    # past the row's backoff
        report = syncer.push()
        assert not report.errors, report.errors
        assert len(_named(sb, "Made Then Lost")) == 1               # adopted, not made again
        assert sb.requests()["by_operation"][CREATE] == 1
        assert _create_row(syncer).status == "done"
        with syncer.store.begin() as conn:
            okitoki_id = conn.execute(select(LINK.c.okitoki_id).where(
                LINK.c.id == row.link_id)).scalar()
        assert okitoki_id == str(_named(sb, "Made Then Lost")[0]["id"])
    finally:
        syncer.close()
