"""Calls: Oki-Toki's call log → one CRM activity per ``session_id``, and outcome → status.

The call log filters by a call's *start* time, but a call only shows once it has ended (and
may change shortly after). So a cursor on start time alone misses every call longer than the
re-read window. Each poll reads ``[cursor - SHORT_OVERLAP, now - settle_delay]`` (ordinary
calls, within a poll of becoming visible), and every ``SWEEP_EVERY`` (or poll, if longer) the
read reaches back ``[previous sweep - window - SHORT_OVERLAP, ...]``, where the window is
``[calls] max_call_duration``, the deprecated ``overlap`` if longer, or what the account has
shown (the longest call read × ``WINDOW_MARGIN``, capped at a day, kept in the sweep cursor).
Every call that became visible since the previous sweep is in that range, restarts included
(the range starts from the last completed sweep). Re-read calls are de-duplicated by
``session_id`` in the ``call`` table (:mod:`.callrecord`): a re-read costs requests, never a
second activity, and a call that changed since it was read updates its activity once.
A call is recorded in the same transaction that queues its outbox rows and advances the
cursors, so it is never queued twice and never skipped.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Sequence

import structlog
from sqlalchemy import select, update

from ..config_checks import MAX_CALL_WINDOW
from ..errors import InvalidRecord
from ..model import Call
from ..store.tables import CallRow, CursorRow
from . import cursors
from .callrecord import (CRM_CAUGHT_UP, call_from_payload, call_payload, fingerprint,
                         quarantine_unreadable, record_calls)
from .context import Context

__all__ = ["pull_calls", "record_calls", "call_window", "STREAM", "SWEEP", "CRM_CAUGHT_UP",
           "call_payload", "call_from_payload", "fingerprint", "SHORT_OVERLAP", "SWEEP_EVERY",
           "HintFetches"]

CALL, CURSOR = CallRow.__table__, CursorRow.__table__
log = structlog.get_logger()
STREAM = "okitoki:calls"
# The long re-read: ``value`` = the time the next sweep reaches back from (the local time of the
# last completed sweep, or earlier while a call it read waits for its CRM contact);
# ``updated_at`` = when it ran; ``last_id`` = the window the account's calls have shown to be
# needed, in seconds (empty: the configured one).
SWEEP = "okitoki:calls:sweep"
INITIAL_LOOKBACK = timedelta(days=1)
SHORT_OVERLAP = timedelta(minutes=10)   # calls that show late, and ordinary calls, every poll
SWEEP_EVERY = timedelta(minutes=5)      # the extra delay a call longer than that may take
WINDOW_MARGIN = 1.5                     # the window grows to the longest call seen × this


def call_window(ctx: Context, learned: timedelta | None = None) -> timedelta:
    """How far back a sweep reaches beyond its previous run: the longest call to support."""
    cfg = ctx.config.calls
    window = max(cfg.max_call_duration, cfg.overlap or timedelta(0), learned or timedelta(0))
    return min(window, MAX_CALL_WINDOW)


def _learned(cur: cursors.StreamCursor) -> timedelta | None:
    return timedelta(seconds=int(cur.last_id)) if cur.last_id and cur.last_id.isdigit() else None


def pull_calls(ctx: Context, *, hinted: bool = False, sessions: Sequence[str] = (),
               hint_fetches: HintFetches | None = None, seen: set[str] | None = None) -> Counter[str]:
    """Read the settled part of the call log; queue new calls, updates of changed calls, and
    statuses. Every ``SWEEP_EVERY`` the read reaches back for long calls (see the module doc).

    ``hinted`` (a webhook said a call ended): read up to now, but advance the cursor only to
    the settled point, so a call that changes after hangup is still read again. ``sessions``:
    the hinted calls' ids; one the read did not bring (a call longer than the short overlap)
    and not recorded yet is fetched by id, so it too arrives at once, not at the next sweep.
    ``seen`` (optional) receives the hinted ids that were read, fetched or already recorded;
    the others are not readable yet (:class:`syncd.engine.hints.CallRetries` looks again).
    """
    cfg = ctx.config.calls
    counts: Counter[str] = Counter()
    now = ctx.now()
    with ctx.store.begin() as conn:
        cur = cursors.load(conn, STREAM)
        sweep = cursors.load(conn, SWEEP)
        swept_at = conn.execute(select(CURSOR.c.updated_at).where(CURSOR.c.stream == SWEEP)).scalar()
    learned = _learned(sweep)
    window = call_window(ctx, learned)
    start = cursors.window_start(cur, SHORT_OVERLAP, initial=now - INITIAL_LOOKBACK)
    settled = now - cfg.settle_delay
    end = now if hinted else settled
    anchor = sweep.value or cur.value
    swept = not hinted and (sweep.value is None or swept_at is None or now - swept_at >= SWEEP_EVERY)
    if swept:
        start = min(start, anchor - window - SHORT_OVERLAP) if anchor else start
        counts["swept"] = 1
    if end <= start:
        return counts
    unreadable: list[tuple[str | None, str, dict[str, Any]]] = []
    batch: list[Call] = []
    held_from: datetime | None = None
    longest = 0

    def flush(final: bool) -> None:
        """Record one batch; the last one also moves the cursors (in the same transaction)."""
        nonlocal held_from
        with ctx.store.begin() as conn:
            if unreadable:
                counts["quarantined"] += quarantine_unreadable(conn, unreadable, now=now)
                unreadable.clear()
            got, held = record_calls(ctx, conn, batch)
            counts.update(got)
            if held is not None and (held_from is None or held < held_from):
                held_from = held
            if not final:
                return
            # A held call pins the cursor at its start, so the next window reads it again.
            upto = settled if held_from is None else min(settled, held_from)
            if upto > start and (cur.value is None or upto > cur.value):
                cursors.advance(conn, cursors.StreamCursor(STREAM, upto), now=ctx.now())
            grown = _grow_window(longest, window, counts)
            keep = grown or learned
            learned_s = str(int(keep.total_seconds())) if keep else None
            if swept:
                # The next sweep reaches back from here; a held call keeps it within reach
                # (never behind the previous anchor: a cursor does not move back).
                reach = now if held_from is None else min(now, held_from + window + SHORT_OVERLAP)
                reach = max(reach, sweep.value) if sweep.value else reach
                cursors.advance(conn, cursors.StreamCursor(SWEEP, reach, learned_s), now=ctx.now())
            elif grown is not None:   # keep what was learned; the next sweep stays when it was due
                conn.execute(update(CURSOR).where(CURSOR.c.stream == SWEEP).values(last_id=learned_s))

    hinted_left = set(sessions)
    # One batch in memory at a time: a sweep of a busy day's log stays small.
    for call in ctx.okitoki.call_log(start, end, on_unreadable=lambda *u: unreadable.append(u)):
        counts["read"] += 1
        longest = max(longest, call.duration_s)
        batch.append(call)
        if len(batch) >= ctx.batch_size:
            flush(False)
            batch = []
        hinted_left.discard(call.session_id)
    fetched = _hinted_calls(ctx, hinted_left, unreadable, counts, hint_fetches, seen)
    if seen is not None:
        seen.update(set(sessions) - hinted_left)
        seen.update(c.session_id for c in fetched)
    longest = max([longest] + [c.duration_s for c in fetched])
    batch += fetched
    flush(True)
    return counts


class HintFetches:
    """How many billed by-id look-ups webhook hints may cause: at most ``per_pull`` per pull
    and ``per_hour`` in any hour. Whoever learns the webhook token can send hints naming calls
    that do not exist; past these limits a hinted call simply waits for the walk."""

    def __init__(self, per_pull: int = 10, per_hour: int = 120) -> None:
        self.per_pull, self.per_hour = per_pull, per_hour
        self._spent: list[datetime] = []

    def allow(self, wanted: int, now: datetime) -> int:
        self._spent = [t for t in self._spent if now - t < timedelta(hours=1)]
        n = max(0, min(wanted, self.per_pull, self.per_hour - len(self._spent)))
        self._spent += [now] * n
        return n


def _hinted_calls(ctx: Context, sessions: set[str], unreadable: list[Any], counts: Counter[str],
                  limit: HintFetches | None = None, seen: set[str] | None = None) -> list[Call]:
    """Hinted calls the window did not hold and the state database does not know, by id
    (at most what ``limit`` allows; the rest wait for the walk)."""
    if not sessions:
        return []
    with ctx.store.begin() as conn:
        known = {r[0] for r in conn.execute(select(CALL.c.session_id).where(
            CALL.c.session_id.in_(sorted(sessions))))}
    if seen is not None:
        seen.update(known)
    wanted = sorted(sessions - known)
    allowed = limit.allow(len(wanted), ctx.now()) if limit is not None else len(wanted)
    if allowed < len(wanted):
        counts["hints_not_fetched"] += len(wanted) - allowed
        log.warning("call_hints_capped", hinted=len(wanted), fetched=allowed,
                    hint="more hinted calls than the by-id look-up limit: the rest arrive with the "
                         "call-log walk (a flood of hints naming unknown calls would spend the budget)")
    found: list[Call] = []
    for sid in wanted[:allowed]:
        try:
            call = ctx.okitoki.call(sid)
        except InvalidRecord as exc:
            unreadable.append((sid, exc.reason, {"session_id": sid}))
            continue
        if call is not None:
            counts["fetched_by_hint"] += 1
            found.append(call)
    return found


def _grow_window(longest_s: int, window: timedelta, counts: Counter[str]) -> timedelta | None:
    """The longer window the longest call just read calls for (logged), or None."""
    longest = timedelta(seconds=longest_s)
    if longest + SHORT_OVERLAP > MAX_CALL_WINDOW:
        counts["longer_than_window"] += 1
        log.warning("call_longer_than_window", longest_call_s=int(longest.total_seconds()),
                    window_s=int(window.total_seconds()),
                    hint="calls this long may be missed by the call-log walk; syncd verify finds them")
    wanted = min(MAX_CALL_WINDOW, timedelta(minutes=-(-longest * WINDOW_MARGIN // timedelta(minutes=1))))
    if wanted <= window:
        return None
    counts["window_grown"] = 1
    log.warning("calls_window_grown", longest_call_s=int(longest.total_seconds()),
                old_window_s=int(window.total_seconds()), new_window_s=int(wanted.total_seconds()),
                hint="raise [calls] max_call_duration to keep it after a reset of the state database")
    return wanted


# The name this function had before it moved (syncd verify and older callers).
_record_calls = record_calls
