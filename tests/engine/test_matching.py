"""Matching a side's records to links: stored link, then number; duplicates are reported."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from syncd.engine.matching import HOLD_MERGE, match_records
from syncd.engine.mapping import Observed
from syncd.store.outbox import insert_ignore
from syncd.store.tables import Link, LinkPhone, MergeCandidate

NOW = datetime(2026, 5, 1, tzinfo=UTC)
LINK, PHONE, MERGE = Link.__table__, LinkPhone.__table__, MergeCandidate.__table__


def obs(side, rid, *phones):
    return Observed(side, rid, {"phones": list(phones)}, NOW)


def _link(conn, phone, **ids):
    lid = conn.execute(LINK.insert().values(entity="contact", tombstone=False, **ids)
                       .returning(LINK.c.id)).scalar()
    insert_ignore(conn, PHONE, [{"phone": phone, "link_id": lid,
                                 "side": "crm" if "crm_id" in ids else "okitoki"}], ["phone", "link_id", "side"])
    return lid


def test_stored_link_first_then_one_phone_candidate_attaches(store):
    with store.begin() as conn:
        known = _link(conn, "+380670000001", crm_id="c1", okitoki_id="o1")
        lonely = _link(conn, "+380670000002", okitoki_id="o2")
        got = match_records(conn, "crm", [obs("crm", "c1", "+380670000009"),
                                          obs("crm", "c2", "+380670000002")], now=NOW)
        assert (got["c1"].link_id, got["c1"].created, got["c1"].attached) == (known, False, False)
        assert (got["c2"].link_id, got["c2"].attached) == (lonely, True)
        assert conn.execute(select(LINK.c.crm_id).where(LINK.c.id == lonely)).scalar() == "c2"


def test_no_candidate_makes_a_new_link(store):
    with store.begin() as conn:
        got = match_records(conn, "okitoki", [obs("okitoki", "o9", "+380670000003")], now=NOW)
        row = conn.execute(select(LINK).where(LINK.c.id == got["o9"].link_id)).one()
    assert got["o9"].created and (row.okitoki_id, row.crm_id, row.hold) == ("o9", None, None)


def test_several_candidates_are_a_merge_candidate_and_not_linked(store):
    with store.begin() as conn:
        a = _link(conn, "+380670000004", okitoki_id="o4")
        b = _link(conn, "+380670000005", okitoki_id="o5")
        got = match_records(conn, "crm", [obs("crm", "c4", "+380670000004", "+380670000005")], now=NOW)
        row = conn.execute(select(LINK).where(LINK.c.id == got["c4"].link_id)).one()
        report = conn.execute(select(MERGE)).one()
    assert row.id not in (a, b) and row.hold == HOLD_MERGE
    assert (report.side, report.record_id, sorted(report.candidates)) == ("crm", "c4", sorted([str(a), str(b)]))


def test_a_number_already_used_on_the_same_side_is_a_duplicate(store):
    with store.begin() as conn:
        _link(conn, "+380670000006", crm_id="c6")
        got = match_records(conn, "crm", [obs("crm", "c7", "+380670000006"),
                                          obs("crm", "c8", "+380670000010"),
                                          obs("crm", "c9", "+380670000010")], now=NOW)
        holds = {rid: conn.execute(select(LINK.c.hold).where(LINK.c.id == m.link_id)).scalar()
                 for rid, m in got.items()}
    assert holds == {"c7": HOLD_MERGE, "c8": None, "c9": HOLD_MERGE}
