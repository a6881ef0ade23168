"""Several requests in flight per remote system, without reordering any record's operations.

A claimed group of one (target, operation) is split into at most ``max_in_flight`` partitions
that run at once, each a plain sequential handler call on its share of the rows. Rows that
must stay in order share a partition, in claim order: a link's rows (a task removal and its
re-create generations, a contact's writes), the calls of one phone number (an unknown number
gets one CRM contact), the tasks of one dialer (a bulk import goes out whole). Rows a handler
sends together (CRM upserts, call logs) are split only in whole requests, so parallelism never
costs an extra request. Creates retried after a crash in the middle of a batch
(``attempts > 1``) go out in parallel like any others: Oki-Toki's share one look-up export,
made for the whole group before it is split (:class:`.results.Grouped`); the CRM's each look
their own number up.

Every request still goes through the system's one rate limiter and daily budget
(:mod:`syncd.http`), so partitions fill the limit instead of waiting for each other's round
trips, and a ``Retry-After`` blocks them all. A system error (anything but a refused record) in
one partition stops the others at their next row, as the sequential loop stopped the group;
rows not started are released by the caller.

How many run at once is ``max_in_flight`` at most, and less when more would not pay (:class:`.pace.Pace`):
the process is one interpreter, so when its CPU is already saturated (a nearby remote answers in
a millisecond and our own work is the bottleneck) extra workers only contend for the
interpreter lock and cost CPU; when requests wait on the network, every worker up to
``max_in_flight`` runs. The rows are cut into more pieces than workers, which take the next
piece when they finish one, so the number running can change in the middle of a batch.
"""

from __future__ import annotations

import contextvars
import copy
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from math import ceil
from typing import Any, Callable, Hashable

from ..errors import InvalidRecord, InvalidRequest
from .context import Context, StopSignal
from .results import Grouped

__all__ = ["SPLITS", "partition", "run_group"]

Rows = list[Any]
KeyOf = Callable[[Any], Hashable]


def _link(r: Any) -> Hashable:
    return ("link", r.link_id) if r.link_id is not None else ("row", r.id)


def _call_phone(r: Any) -> Hashable:
    phone = (r.payload or {}).get("phone")
    return ("phone", phone) if phone else _link(r)


def _dialer(r: Any) -> Hashable:
    return ("dialer", str((r.payload or {}).get("dialer_id")))


def _crm_batch(ctx: Context) -> int:
    return max(1, ctx.crm_capabilities.write_batch_size or 50)


def _calls_batch(ctx: Context) -> int:
    return max(1, ctx.crm_capabilities.calls_batch_size or 50)


# (target, operation) → (what must stay together, rows per request). Operations not listed
# (list values, CRM deletes, call updates) run as one group, as before.
SPLITS: dict[tuple[str, str], tuple[KeyOf, Callable[[Context], int]]] = {
    ("okitoki", "contact_create"): (_link, lambda ctx: 1),
    ("okitoki", "contact_update"): (_link, lambda ctx: 1),
    ("okitoki", "remove_task"): (_link, lambda ctx: 1),
    ("okitoki", "add_task"): (_dialer, lambda ctx: 1),   # a dialer's tasks: whole bulk imports
    ("crm", "contact_create"): (_link, _crm_batch),
    ("crm", "contact_update"): (_link, _crm_batch),
    ("crm", "status"): (_link, _crm_batch),
    ("crm", "log_call"): (_call_phone, _calls_batch),
}


def partition(rows: Rows, *, ways: int, unit: int, key: KeyOf) -> list[Rows]:
    """Split ``rows`` into at most ``ways`` partitions of whole keys, about equal in rows,
    never more than there are requests' worth of rows (``unit`` rows a request). Rows keep
    their order inside a partition."""
    by_key: dict[Hashable, Rows] = {}
    for r in rows:
        by_key.setdefault(key(r), []).append(r)
    n = min(ways, len(by_key), max(1, ceil(len(rows) / max(1, unit))))
    if n <= 1:
        return [list(rows)] if rows else []
    parts: list[Rows] = [[] for _ in range(n)]
    for group in sorted(by_key.values(), key=len, reverse=True):   # largest first, to the
        min(parts, key=len).extend(group)                          # least loaded partition
    order = {r.id: i for i, r in enumerate(rows)}
    return [sorted(p, key=lambda r: order[r.id]) for p in parts if p]


class _Halt:
    """A stop signal: the daemon's, or one partition's system error halting the others."""

    def __init__(self, outer: StopSignal | None) -> None:
        self.outer = outer
        self.event = threading.Event()

    def is_set(self) -> bool:
        return self.event.is_set() or (self.outer is not None and self.outer.is_set())


def _system_error(outcomes: dict[int, Any]) -> bool:
    return any(isinstance(o, BaseException) and not isinstance(o, (InvalidRecord, InvalidRequest))
               for o in outcomes.values())


PIECES_PER_WORKER = 3   # pieces a batch is cut into, per worker running: few enough that a
                        # handler's fixed cost (its links read) stays small, enough that the
                        # number running can change within a batch and no worker idles long
                        # at its end


def run_group(ctx: Context, handler: Callable[[Context, Rows], dict[int, Any]], rows: Rows,
              *, target: str, operation: str, pool: ThreadPoolExecutor | None) -> dict[int, Any]:
    """The handler's outcomes for ``rows``, computed by up to ``ctx.in_flight(target)``
    workers at once on ``pool`` (sequentially without one), as many as :class:`.pace.Pace` allows."""
    split = SPLITS.get((target, operation))
    cap = ctx.in_flight(target)
    # a handler runs in a context of its own: the records it binds for the journal
    # (syncd.apirecords.about) end with it
    if split is None or pool is None or cap <= 1 or len(rows) <= 1:
        return contextvars.copy_context().run(handler, ctx, rows)
    key, unit = split
    pace = ctx.pace(target)
    running = pace.begin(cap)
    pieces = partition(rows, ways=running * PIECES_PER_WORKER, unit=unit(ctx), key=key)
    if len(pieces) <= 1:
        return contextvars.copy_context().run(handler, ctx, rows)
    if isinstance(handler, Grouped):   # the group's one look-up, before it is split
        handler = contextvars.copy_context().run(handler.prepare, ctx, rows)
    halt = _Halt(ctx.stop)
    sub = copy.copy(ctx)
    sub.stop = halt
    todo = deque(pieces)

    def worker() -> dict[int, Any]:
        done: dict[int, Any] = {}
        while True:
            pace.acquire()
            try:
                if halt.is_set() or not todo:
                    return done
                piece = todo.popleft()
                try:
                    got = contextvars.copy_context().run(handler, sub, piece)
                except Exception as exc:  # noqa: BLE001 - the piece failed as a whole
                    got = {r.id: exc for r in piece}
                if _system_error(got):
                    halt.event.set()
                done.update(got)
            finally:
                pace.release()

    outcomes: dict[int, Any] = {}
    # each worker sees the caller's log context (run_id, stream)
    runs = [contextvars.copy_context() for _ in range(min(cap, len(pieces)))]
    for got in pool.map(lambda run: run.run(worker), runs):
        outcomes.update(got)
    return outcomes
