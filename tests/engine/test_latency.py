"""Latency samples: measured from the change's own time at its source to the effect settled,
stored for `syncd status` (p50/p95 per flow) and handed to the daemon's histogram; a backfill
(a change older than an hour when queued) is no latency sample."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from syncd.engine import latency
from syncd.engine.status import status_report
from syncd.store.tables import LatencySample

LAT = LatencySample.__table__


def _samples(store, flow):
    with store.begin() as conn:
        return [r.seconds for r in conn.execute(select(LAT).where(LAT.c.flow == flow))]


def test_a_new_lead_task_is_measured_from_the_crm_change_time(world):
    syncer, sb, crm = world
    heard: list[tuple[str, float]] = []
    syncer.ctx.latency_listener = lambda flow, s: heard.append((flow, s))
    crm._t = datetime.now(UTC) - timedelta(seconds=7)
    crm.add(("0671234588",), name="Lead", status="new")
    syncer.cycle()
    [lead] = _samples(syncer.store, "lead_to_task")
    assert 7.0 <= lead < 30.0
    assert ("lead_to_task", lead) in [(f, round(s, 3)) for f, s in heard]
    assert 7.0 <= min(_samples(syncer.store, "crm_to_okitoki")) < 30.0   # the contact itself
    report = status_report(syncer.store)["latency"]
    assert report["lead_to_task"]["count"] == 1 and report["lead_to_task"]["p95_s"] == round(lead, 2)


def test_a_backfill_of_old_records_is_not_latency(world):
    syncer, sb, crm = world
    crm._t = datetime.now(UTC) - timedelta(hours=3)
    crm.add(("0671234577",), name="Old lead", status="new")
    syncer.cycle()
    assert [t for t in sb.state()["tasks"] if any("380671234577" in p for p in t["phones"])]
    assert _samples(syncer.store, "lead_to_task") == []


def test_quantiles_and_pruning_keep_a_small_rolling_sample(world):
    syncer, _sb, _crm = world
    now = datetime.now(UTC)
    with syncer.store.begin() as conn:
        conn.execute(LAT.insert(), [{"flow": "call_to_crm", "at": now, "seconds": float(s)} for s in range(1, 101)])
        conn.execute(LAT.insert(), [{"flow": "call_to_crm", "at": now - timedelta(days=2), "seconds": 999.0}])
        summary = latency.summary(conn, now)["call_to_crm"]
        assert summary == {"count": 100, "p50_s": 50.0, "p95_s": 95.0, "max_s": 100.0}
        conn.execute(LAT.insert(), [{"flow": "call_to_crm", "at": now, "seconds": 1.0}] * latency.KEEP)
        assert latency.prune(conn, now) == 101
        assert conn.execute(select(LAT.c.id).where(LAT.c.flow == "call_to_crm")).all().__len__() == latency.KEEP
