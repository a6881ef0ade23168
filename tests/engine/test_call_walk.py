"""The call-log walk loses no call, however long it lasted, and follows calls that change.

The real sandbox over loopback (its log filters by start time; a call shows at hangup), the
in-memory CRM, a real store (SQLite file and the local PostgreSQL). The daemon's clock and the
sandbox's move together, so hours pass in milliseconds.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from sqlalchemy import select

from syncd.engine.build import build_syncer
from syncd.engine.calls import SWEEP, SWEEP_EVERY
from syncd.engine.status import list_dead_letters
from syncd.store import open_store
from syncd.store.tables import CallRow, CursorRow, Outbox

from .conftest import make_config
from .fake_crm import FakeCrm

CALL, OUTBOX, CURSOR = CallRow.__table__, Outbox.__table__, CursorRow.__table__
CALLS = {"to_crm": True, "settle_delay": "0s", "unknown_numbers": "skip",
         "status_order": ["new", "callback", "contacted", "qualified", "won", "lost"],
         "outcome_status": {"answered": "contacted", "no_answer": "callback", "busy": "callback"}}


class SharedClock:
    """The daemon's clock and the sandbox's, moved together."""

    def __init__(self, sb: Any) -> None:
        self.sb, self.offset = sb, timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += timedelta(seconds=seconds)
        self.sb.advance_clock(seconds)


@pytest.fixture
def walk(state_url, sandbox, tmp_path):
    """start(**calls_overrides) → (syncer, sandbox, crm, clock); restart() → a new syncer over
    the same state database (the old one closed)."""
    open_store(state_url, create=True).close()
    crm, clock = FakeCrm(), SharedClock(sandbox)
    made: list[Any] = []

    def start(**calls: Any):
        config = make_config(state_url, sandbox.url, sandbox.token, calls={**CALLS, **calls})
        made.append(build_syncer(config, crm=crm, state_dir=tmp_path / "crm", instance_id="t", clock=clock))
        return made[-1], sandbox, crm, clock

    yield start
    for s in made:
        s.close()


def _call(sb, phone: str, seconds: int, **spec: Any) -> str:
    return str(sb.add_call(phone=phone, direction="in", outcome="answered", duration=seconds,
                           **spec)["session_id"])


def _until_swept(syncer, clock, polls: int | None = None) -> None:
    """Poll every 30 s for one sweep interval (what the daemon does by default)."""
    for _ in range(polls or int(SWEEP_EVERY.total_seconds() // 30) + 1):
        clock.advance(30)
        assert not syncer.cycle().errors


def test_calls_of_30s_40min_and_3h_ending_in_one_cycle_each_reach_the_crm_once(walk):
    syncer, sb, crm, clock = walk()
    cid = crm.add(("0671110001",), name="Support Line", status="new")
    syncer.cycle()
    clock.advance(30)
    ids = [_call(sb, "380671110001", s) for s in (30, 40 * 60, 3 * 3600)]
    syncer.cycle()
    assert crm.call_sends == [ids[0]]            # ordinary calls: the next poll
    _until_swept(syncer, clock)
    assert sorted(crm.calls) == sorted(ids)      # long ones: within one sweep interval
    _until_swept(syncer, clock, polls=30)        # more polls and sweeps re-read them: nothing new
    assert sorted(crm.call_sends) == sorted(ids)
    assert crm.rows[cid].fields["status"] == "contacted"
    with syncer.store.begin() as conn:
        assert {r.session_id: r.state for r in conn.execute(select(CALL))} == {i: "logged" for i in ids}


def test_the_old_ten_minute_overlap_no_longer_hides_a_long_call(walk):
    """The issue's report: a 60 s call reached the CRM, a 40 min one ending a moment later
    never did. An old config keeps its overlap key; it only widens the window now."""
    syncer, sb, crm, clock = walk(overlap="10m")
    crm.add(("0671110002",), name="Old Config", status="new")
    syncer.cycle()
    clock.advance(60)
    short, long_ = _call(sb, "380671110002", 60), None
    clock.advance(2)
    long_ = _call(sb, "380671110002", 40 * 60)
    _until_swept(syncer, clock)
    assert sorted(crm.call_sends) == sorted([short, long_])


def test_a_call_updated_twice_after_it_was_logged_updates_its_activity_twice_and_no_more(walk):
    syncer, sb, crm, clock = walk()
    cid = crm.add(("0671110003",), name="Late Recording", status="new")
    syncer.cycle()
    sid = _call(sb, "380671110003", 300, record_url=None)
    clock.advance(30)
    syncer.cycle()
    assert crm.calls[sid].recording_url is None and crm.call_updates == []
    sb.update_call(int(sid), record_url="https://rec.example/1.mp3")
    clock.advance(30)
    syncer.cycle()
    assert crm.calls[sid].recording_url == "https://rec.example/1.mp3"
    sb.update_call(int(sid), result="no_answer", ctime=0)      # outcome corrected later
    clock.advance(30)
    syncer.cycle()
    assert crm.calls[sid].outcome == "no_answer" and crm.calls[sid].talk_s == 0
    _until_swept(syncer, clock, polls=25)
    assert crm.call_updates == [sid, sid]
    assert crm.call_sends == [sid]
    assert crm.rows[cid].fields["status"] == "contacted"        # the correction goes forward only
    with syncer.store.begin() as conn:
        row = conn.execute(select(CALL).where(CALL.c.session_id == sid)).one()
        keys = [k for (k,) in conn.execute(select(OUTBOX.c.idem_key).where(OUTBOX.c.operation == "update_call"))]
    assert row.revision == 2 and len(keys) == 2


def test_a_call_that_changes_before_it_is_sent_is_sent_once_with_the_new_values(walk):
    syncer, sb, crm, clock = walk()
    crm.add(("0671110004",), name="Quick Change", status="new")
    syncer.cycle()
    sid = _call(sb, "380671110004", 120, record_url=None)
    clock.advance(30)
    syncer.pull_okitoki_calls()                     # read, queued, not pushed yet
    sb.update_call(int(sid), record_url="https://rec.example/2.mp3")
    clock.advance(30)
    syncer.pull_okitoki_calls()
    syncer.push()
    assert crm.calls[sid].recording_url == "https://rec.example/2.mp3"
    assert crm.call_sends == [sid] and crm.call_updates == []


def test_a_restart_between_hangup_and_the_read_loses_and_duplicates_nothing(walk):
    syncer, sb, crm, clock = walk()
    crm.add(("0671110005",), name="Restart", status="new")
    syncer.cycle()
    ids = [_call(sb, "380671110005", s) for s in (30, 40 * 60, 3 * 3600)]
    syncer.pull_okitoki_calls()        # the short call is read and queued, then the process dies
    syncer.close()
    clock.advance(3 * 3600)            # down for three hours: longer than the short overlap
    late = _call(sb, "380671110005", 2 * 3600)   # a call that ended while it was down
    syncer, *_ = walk()
    _until_swept(syncer, clock, polls=3)
    assert sorted(crm.call_sends) == sorted(ids + [late])
    _until_swept(syncer, clock, polls=12)
    assert sorted(crm.call_sends) == sorted(ids + [late])


def test_the_window_grows_when_the_account_shows_longer_calls(walk):
    syncer, sb, crm, clock = walk(max_call_duration="1h")
    crm.add(("0671110006",), name="Long Talker", status="new")
    syncer.cycle()
    first = _call(sb, "380671110006", 50 * 60)
    with structlog.testing.capture_logs() as logs:
        _until_swept(syncer, clock)
    grown = [e for e in logs if e["event"] == "calls_window_grown"]
    assert grown and 75 * 60 <= grown[0]["new_window_s"] <= 77 * 60   # 50 min + the queue wait, × 1.5
    with syncer.store.begin() as conn:
        kept = conn.execute(select(CURSOR.c.last_id).where(CURSOR.c.stream == SWEEP)).scalar()
    assert kept == str(grown[0]["new_window_s"])
    second = _call(sb, "380671110006", 70 * 60)   # longer than the configured hour
    _until_swept(syncer, clock)
    assert sorted(crm.call_sends) == sorted([first, second])


def test_an_unreadable_call_is_quarantined_with_its_id_and_the_walk_goes_on(walk):
    syncer, sb, crm, clock = walk()
    crm.add(("0671110007",), name="Broken Entry", status="new")
    syncer.cycle()
    bad = _call(sb, "380671110007", 60)
    sb.update_call(int(bad), etime="not a time")
    good = _call(sb, "380671110007", 30)
    clock.advance(30)
    syncer.cycle()
    assert crm.call_sends == [good]
    [dead] = [d for d in list_dead_letters(syncer.store) if d["operation"] == "ingest"]
    assert bad in dead["key"] and "etime" in dead["reason"] or "not a time" in dead["reason"]
    _until_swept(syncer, clock)
    assert len([d for d in list_dead_letters(syncer.store) if d["operation"] == "ingest"]) == 1


def test_an_hour_of_polls_costs_one_request_each_and_sweeps_add_none_when_a_page_holds_them(walk):
    syncer, sb, crm, clock = walk()
    crm.add(("0671110008",), name="Budget", status="new")
    syncer.cycle()
    for i in range(20):
        _call(sb, "380671110008", 60 * (i + 1))
    sb.clear_requests()
    for _ in range(120):                    # an hour at the default poll interval of 30 s
        clock.advance(30)
        syncer.pull_okitoki_calls()
    assert sb.requests()["by_operation"].get("calls/log") == 120


def test_two_changes_read_before_a_push_send_one_update_with_the_latest_values(walk):
    syncer, sb, crm, clock = walk()
    crm.add(("0671110009",), name="Two Changes", status="new")
    syncer.cycle()
    sid = _call(sb, "380671110009", 90, record_url=None)
    clock.advance(30)
    syncer.cycle()
    sb.update_call(int(sid), record_url="https://rec.example/a.mp3")
    clock.advance(30)
    syncer.pull_okitoki_calls()
    sb.update_call(int(sid), record_url="https://rec.example/b.mp3")
    clock.advance(30)
    syncer.pull_okitoki_calls()
    requests = crm.requests
    syncer.push()
    assert crm.call_updates == [sid] and crm.calls[sid].recording_url == "https://rec.example/b.mp3"
    assert crm.requests == requests + 1          # the superseded change cost no request
    with syncer.store.begin() as conn:
        states = [r.status for r in conn.execute(select(OUTBOX.c.status).where(OUTBOX.c.operation == "update_call"))]
    assert states == ["done", "done"]


def test_a_connector_that_cannot_update_keeps_the_first_version_and_queues_nothing(walk):
    syncer, sb, crm, clock = walk()
    crm.capabilities = replace(crm.capabilities, calls_update=False)
    crm.add(("0671110010",), name="No Updates", status="new")
    syncer.cycle()
    sid = _call(sb, "380671110010", 90, record_url=None)
    clock.advance(30)
    syncer.cycle()
    sb.update_call(int(sid), record_url="https://rec.example/c.mp3")
    clock.advance(30)
    report = syncer.cycle()
    assert crm.call_updates == [] and crm.call_sends == [sid]
    assert report.runs[2].counts.get("updates_unsupported") == 1
    with syncer.store.begin() as conn:
        assert not conn.execute(select(OUTBOX).where(OUTBOX.c.operation == "update_call")).first()


def test_a_hinted_long_call_arrives_at_once_not_at_the_next_sweep(walk):
    syncer, sb, crm, clock = walk()
    crm.add(("0671110011",), name="Hinted Long", status="new")
    syncer.cycle()
    clock.advance(30)
    syncer.cycle()                                   # a sweep is 5 minutes away now
    sid = _call(sb, "380671110011", 50 * 60)
    syncer.hint_call(sid)
    report = syncer.cycle()
    assert crm.call_sends == [sid]
    assert report.runs[2].counts.get("fetched_by_hint") == 1
    _until_swept(syncer, clock)
    assert crm.call_sends == [sid]


def test_calls_logged_before_the_upgrade_update_only_if_what_was_sent_differs(walk):
    """Rows from before fingerprints were kept: what their log_call sent decides."""
    syncer, sb, crm, clock = walk()
    crm.add(("0671110012",), name="Upgraded", status="new")
    syncer.cycle()
    same, changed = (_call(sb, "380671110012", 60, record_url=None) for _ in range(2))
    clock.advance(30)
    syncer.cycle()
    with syncer.store.begin() as conn:
        conn.execute(CALL.update().values(fingerprint=None))      # as migration 0002 leaves them
    sb.update_call(int(changed), record_url="https://rec.example/after-upgrade.mp3")
    clock.advance(30)
    syncer.cycle()
    assert crm.call_updates == [changed]
    with syncer.store.begin() as conn:
        assert conn.execute(select(CALL.c.fingerprint).where(CALL.c.session_id == same)).scalar()


def test_a_long_call_waiting_for_its_crm_contact_is_not_lost_while_the_crm_catches_up(walk):
    """A call to a number the CRM may hold but has not shown yet waits (not recorded). While
    it waits, the sweeps keep reaching back far enough to read it again."""
    syncer, sb, crm, clock = walk(max_call_duration="1h")
    crm.add(("0671110013",), name="Someone Else", status="new")
    syncer.cycle()
    clock.advance(30)
    sid = _call(sb, "380671110014", 50 * 60)    # the window grows to 76 min: 26 min to spare
    for _ in range(120):                        # an hour of call pulls, the CRM not read meanwhile
        clock.advance(30)
        assert not syncer.pull_okitoki_calls().errors
    crm.add(("0671110014",), name="Late Contact", status="new")
    _until_swept(syncer, clock)
    assert crm.call_sends == [sid]


def test_the_window_is_the_longest_of_the_setting_the_old_overlap_and_what_was_learned():
    from types import SimpleNamespace

    from syncd.engine.calls import call_window

    def window(learned=None, **calls):
        ctx = SimpleNamespace(config=make_config("sqlite://", calls={**CALLS, **calls}))
        return call_window(ctx, learned)

    assert window() == timedelta(hours=4)
    assert window(overlap="6h") == timedelta(hours=6)             # an old config still widens it
    assert window(overlap="10m", max_call_duration="2h") == timedelta(hours=2)
    assert window(timedelta(hours=9)) == timedelta(hours=9)
    assert window(timedelta(days=3)) == timedelta(days=1)         # capped: verify finds longer


def test_a_flood_of_hints_naming_unknown_calls_cannot_spend_the_budget(walk):
    """Whoever learns the webhook token can name calls that do not exist: the by-id look-ups
    they cause are capped per pull and per hour; the walk still reads every real call."""
    syncer, sb, crm, clock = walk()
    crm.add(("0671110013",), name="Flooded", status="new")
    syncer.cycle()
    real = _call(sb, "380671110013", 60)
    sb.clear_requests()
    for round_ in range(20):
        for n in range(300):
            syncer.hint_call(str(9_000_000 + round_ * 1000 + n))
        clock.advance(30)
        syncer.cycle()
    by_id = sb.requests()["by_operation"].get("calls/data", 0)
    assert 10 <= by_id <= 120, f"{by_id} billed look-ups for hints naming calls that do not exist"
    assert crm.call_sends == [real]
