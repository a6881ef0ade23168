"""A call event that comes before the call is readable in the log (Oki-Toki writes it shortly
after hangup) is not wasted: the hinted call is looked up again on a short backoff until it
shows, within the by-id look-up caps, and after the last try the poll takes over."""

from __future__ import annotations

import time
from datetime import timedelta

from syncd.engine.calls import HintFetches
from syncd.engine.hints import CallRetries

SHORT = (timedelta(seconds=0.3), timedelta(seconds=0.6), timedelta(seconds=1.2))


def _due_wait(syncer) -> None:
    due = syncer.call_retries.next_at()
    assert due is not None
    left = (due - syncer.ctx.now()).total_seconds()
    time.sleep(max(0.0, left) + 0.02)


def test_a_hinted_call_readable_only_later_is_found_by_a_retry(world):
    syncer, sb, _crm = world
    syncer.call_retries = CallRetries(backoff=SHORT)
    sid = str(sb.add_call(phone="380671230077", direction="in", outcome="answered",
                          settle_delay="0.7s")["session_id"])
    syncer.hint_call(sid)
    first = syncer.pull_okitoki_calls().counts
    assert first.get("hints_not_in_log") == 1 and syncer.call_retries.waiting() == [sid]
    found_after = None
    for attempt in range(3):
        _due_wait(syncer)
        counts = syncer.pull_okitoki_calls().counts
        if not syncer.call_retries.waiting():
            found_after = attempt + 1
            break
    assert found_after is not None, "the call never reached the state database"
    assert counts.get("hints_retried") == 1
    assert counts.get("hints_not_in_log", 0) == 0
    assert counts.get("read", 0) + counts.get("fetched_by_hint", 0) >= 1


def test_a_hinted_call_that_never_shows_is_tried_3_more_times_then_left_to_the_poll(world):
    syncer, sb, _crm = world
    syncer.call_retries = CallRetries(backoff=SHORT)
    syncer.hint_call("987654321")                   # no such call
    pulls = [syncer.pull_okitoki_calls().counts]
    while syncer.call_retries.waiting():
        _due_wait(syncer)
        pulls.append(syncer.pull_okitoki_calls().counts)
    assert len(pulls) == 4                          # the hinted pull and 3 retries
    assert pulls[-1].get("hints_given_up") == 1
    assert sum(p.get("hints_retried", 0) for p in pulls) == 3


def test_retries_spend_by_id_look_ups_only_within_the_cap(world):
    syncer, sb, _crm = world
    syncer.call_retries = CallRetries(backoff=SHORT)
    syncer._hint_fetches = HintFetches(per_pull=10, per_hour=2)
    for sid in ("987654301", "987654302"):
        syncer.hint_call(sid)
    sb.sandbox.journal.clear()
    pulls = [syncer.pull_okitoki_calls().counts]
    while syncer.call_retries.waiting():
        _due_wait(syncer)
        pulls.append(syncer.pull_okitoki_calls().counts)
    assert sum(p.get("hints_not_fetched", 0) for p in pulls) == 2 * 4 - 2   # only 2 look-ups in the hour
    assert sb.sandbox.journal.by_operation.get("calls/data", 0) == 2, sb.sandbox.journal.by_operation


def test_retry_pulls_are_capped_per_hour_then_the_poll_takes_over(world):
    syncer, sb, _crm = world
    syncer.call_retries = CallRetries(backoff=SHORT)
    syncer._retry_pulls = HintFetches(per_pull=1, per_hour=1)
    syncer.hint_call("987654311")
    syncer.pull_okitoki_calls()
    _due_wait(syncer)
    assert syncer.pull_okitoki_calls().counts.get("hints_retried") == 1
    _due_wait(syncer)
    sb.sandbox.journal.clear()
    counts = syncer.pull_okitoki_calls().counts
    assert counts.get("hints_given_up") == 1 and "hints_retried" not in counts
    assert syncer.call_retries.waiting() == []
