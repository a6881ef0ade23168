"""Draining the outbox: claim by lane, call the remote, settle each row with its effects.

A row's effects (the new link id, the side's values we wrote, a task id, a call's activity
id) commit in the same transaction that marks the row done, so a crash between the remote
call and that commit leaves the row claimed; it becomes claimable when the claim expires and
its handler looks the record up before creating it again (invariant 2).
"""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from datetime import datetime, timedelta
from typing import Any

import structlog

from ..errors import BudgetExhausted, FatalRemoteError, RemoteError
from ..model import Change
from ..redact import redact
from ..store import outbox as sql
from .context import OUTBOX, Context
from . import latency
from .effects import apply_effects
from .inflight import run_group
from .outbox import LANE_SYSTEMS, LOW_BUDGET_SHARE, URGENT_LANES, Lane, classify
from .reconcile import add_key_like
from .results import Done, Handler, Handlers, Later, RowResult

__all__ = ["push", "paused_lanes"]

log = structlog.get_logger()
BULK_TASKS = 1000                   # the bulk import endpoint takes up to 1000 tasks
CLAIM_HOLD = timedelta(minutes=2)   # a batch is sized to finish well within this (see _batch_size)


def paused_lanes(ctx: Context) -> dict[Lane, str]:
    """Lanes that must wait because a system's daily budget is nearly spent (invariant 6)."""
    paused: dict[Lane, str] = {}
    if ctx.budget is None:
        return paused
    limits = ctx.budget.limits
    for system in ("okitoki", "crm"):
        limit = limits.get(system)
        left = ctx.budget.remaining(system)
        if limit is None or left is None:
            continue
        low = left <= limit * LOW_BUDGET_SHARE
        for lane in Lane:
            if system in LANE_SYSTEMS[lane] and (left <= 0 or (low and lane not in URGENT_LANES)):
                paused.setdefault(lane, f"{system} budget low: {left} of {limit} requests left today")
    return paused


def _batch_size(ctx: Context, lane: Lane, cap: int) -> int:
    """Rows per claim: small enough that one-request-per-row lanes finish within the claim at
    the configured rate limit (contacts and do-not-call go one row or one list per request),
    large enough that every request slot has a few seconds of work between two claims."""
    if lane == Lane.CONTACTS:
        want = max(cap, 25 * ctx.in_flight("okitoki"))
        return max(1, min(want, int(ctx.config.okitoki.requests_per_minute)))
    return cap


def _pools(ctx: Context, stack: ExitStack) -> dict[str, ThreadPoolExecutor]:
    """One bounded pool of request workers per remote system with ``max_in_flight`` > 1."""
    if ctx.dry_run:
        return {}
    pools: dict[str, ThreadPoolExecutor] = {}
    for system in ("okitoki", "crm"):
        ways = ctx.in_flight(system)
        if ways > 1:
            pools[system] = stack.enter_context(
                ThreadPoolExecutor(ways, thread_name_prefix=f"push-{system}"))
    return pools


def push(ctx: Context, stop: threading.Event | None = None, *, handlers: Handlers,
         batch: int = 100) -> tuple[Counter[str], list[str]]:
    """Drain due outbox rows lane by lane until empty or ``stop`` is set; (counts, errors).

    ``handlers``: what each (target, operation) does remotely (:data:`.handlers.HANDLERS`).
    Within a claimed batch, the requests of each group run up to ``max_in_flight`` at once
    per remote system (:mod:`.inflight`); groups, batches and lanes still go one after another.
    """
    stop = stop or threading.Event()
    ctx.stop = stop
    counts: Counter[str] = Counter()
    errors: list[str] = []
    paused = paused_lanes(ctx)
    for lane, why in paused.items():
        counts[f"paused_{lane.name.lower()}"] = 1
        log.warning("lane_paused", lane=lane.name.lower(), reason=why)
    with ExitStack() as stack:
        fatal = _drain(ctx, stop, counts, errors, paused, _pools(ctx, stack), batch, handlers)
    if fatal is not None:
        raise fatal
    return counts, errors


def _drain(ctx: Context, stop: threading.Event, counts: Counter[str], errors: list[str],
           paused: dict[Lane, str], pools: dict[str, ThreadPoolExecutor],
           batch: int, handlers: Handlers) -> FatalRemoteError | None:
    stopped_systems: set[str] = set()
    fatal: FatalRemoteError | None = None
    for lane in Lane:
        if lane in paused or set(LANE_SYSTEMS[lane]) & stopped_systems:
            continue
        seen: set[int] = set()
        while not stop.is_set():
            rows = []
            if lane == Lane.TASKS:
                rows = _claim_tasks(ctx, lane, batch)
            if not rows:
                rows = sql.claim(ctx.store, lanes=[lane], limit=_batch_size(ctx, lane, batch),
                                 holder=ctx.instance_id, now=ctx.now(), hold=CLAIM_HOLD)
            again = [r.id for r in rows if r.id in seen]
            if again:   # retried or released in this run already: their turn is the next run
                sql.release(ctx.store, again, holder=ctx.instance_id, now=ctx.now())
            rows = [r for r in rows if r.id not in seen]
            if not rows:
                break
            seen.update(r.id for r in rows)
            groups: dict[tuple[str, str], list[Any]] = {}
            for r in rows:
                groups.setdefault((r.target, r.operation), []).append(r)
            outcomes: dict[int, RowResult] = {}
            for (target, operation), group in groups.items():
                if stop.is_set() or target in stopped_systems:
                    break
                if ctx.dry_run:
                    outcomes.update(_plan(ctx, group))
                    continue
                handler: Handler | None = handlers.get((target, operation))
                if handler is None:
                    outcomes.update({r.id: ValueError(f"no handler for {target} {operation}") for r in group})
                    continue
                try:
                    outcomes.update(run_group(ctx, handler, group, target=target,
                                              operation=operation, pool=pools.get(target)))
                except Exception as exc:  # noqa: BLE001 - the whole group failed the same way
                    outcomes.update({r.id: exc for r in group})
            stop_exc = _settle(ctx, rows, outcomes, counts, errors)
            if ctx.heartbeat is not None and stop_exc is None:
                ctx.heartbeat("push")
            if stop_exc is not None:
                # a stop is a remote's (fatal or out of budget): classify() says so
                system = stop_exc.system if isinstance(stop_exc, RemoteError) else ""
                stopped_systems.add(system or "okitoki")
                if isinstance(stop_exc, FatalRemoteError):
                    fatal = stop_exc
                break
    return fatal


def _claim_tasks(ctx: Context, lane: Lane, batch: int) -> list[Any]:
    """Removals first (a replaced task must be gone before its successor is made), then
    creates in full bulk imports: up to ``BULK_TASKS`` creates, then each dialer's share topped
    up with that dialer's due creates to a whole number of imports (or all it has), so a
    dialer's tasks go out ``BULK_TASKS`` a request, the minimum the endpoint allows."""
    rows = sql.claim(ctx.store, lanes=[lane], limit=_batch_size(ctx, lane, batch),
                     holder=ctx.instance_id, now=ctx.now(), hold=CLAIM_HOLD, operations=["remove_task"])
    if rows:
        return rows
    rows = sql.claim(ctx.store, lanes=[lane], limit=BULK_TASKS, holder=ctx.instance_id,
                     now=ctx.now(), hold=CLAIM_HOLD, operations=["add_task"])
    per_dialer = Counter(str((r.payload or {}).get("dialer_id")) for r in rows)
    for dialer, n in sorted(per_dialer.items()):
        short = -n % BULK_TASKS
        if short and len(per_dialer) > 1:
            rows += sql.claim(ctx.store, lanes=[lane], limit=short, holder=ctx.instance_id,
                              now=ctx.now(), hold=CLAIM_HOLD, operations=["add_task"],
                              where=OUTBOX.c.idem_key.like(add_key_like(dialer), escape="\\"))
    return rows


def _plan(ctx: Context, group: list[Any]) -> dict[int, RowResult]:
    for r in group:
        payload = r.payload or {}
        ctx.planned.append(Change(target=r.target, operation=r.operation,
                                  record_id=str(r.link_id) if r.link_id is not None else None,
                                  fields=dict(payload.get("values") or {k: v for k, v in payload.items()
                                                                       if k != "call"}),
                                  reason=f"outbox {Lane(r.lane).name.lower()} lane"))
    return {r.id: Done(note="planned") for r in group}


def _settle(ctx: Context, rows: list[Any], outcomes: dict[int, RowResult], counts: Counter[str],
            errors: list[str]) -> BaseException | None:
    now = ctx.now()
    stop_exc: BaseException | None = None
    release: list[int] = []
    done: list[int] = []
    effects: list[tuple[Any, Any]] = []
    with ctx.store.begin() as conn:
        for r in rows:
            out = outcomes.get(r.id)
            if out is None:
                release.append(r.id)
                continue
            if isinstance(out, Done):
                if out.effect is not None:
                    effects.append((r, out.effect))
                done.append(r.id)
                counts[f"{r.target}_{r.operation}"] += 1
                continue
            if isinstance(out, Later):
                sql.mark_retry(conn, r.id, error=out.reason, at=out.at, now=now, count_attempt=False)
                counts["waiting"] += 1
                continue
            verdict = classify(out, attempts=r.attempts - 1, now=now, backoff=ctx.backoff)
            reason = redact(verdict.reason)
            if verdict.action == "stop":
                release.append(r.id)
                stop_exc = stop_exc or out
                continue
            if verdict.action == "dead":
                sql.mark_dead(conn, r.id, reason=reason, now=now)
                counts["dead"] += 1
                log.warning("dead_letter", target=r.target, operation=r.operation, key=r.idem_key,
                            reason=reason)
            else:
                sql.mark_retry(conn, r.id, error=reason, at=verdict.at or now, now=now,
                               count_attempt=verdict.count_attempt)
                counts["retry"] += 1
            errors.append(f"{r.target} {r.operation} {r.idem_key}: {reason}")
        failed = _apply_effects_safely(conn, effects, now=now, counts=counts, errors=errors)
        sql.mark_done(conn, [i for i in done if i not in failed], now=now)
        settled = set(done) - failed
        samples = latency.settled(ctx, conn, [r for r in rows if r.id in settled], now)
    latency.publish(ctx, samples)
    if release:
        sql.release(ctx.store, release, holder=ctx.instance_id, now=now)
    if isinstance(stop_exc, BudgetExhausted):
        counts["budget_exhausted"] += 1
    if stop_exc is not None:
        errors.append(redact(str(stop_exc)))
    return stop_exc


def _apply_effects_safely(conn: Any, effects: list[tuple[Any, Any]], *, now: datetime,
                          counts: Counter[str], errors: list[str]) -> set[int]:
    """Apply the batch's effects in bulk; if that fails, row by row, so one row whose outcome
    cannot be recorded is quarantined (with the reason) instead of stranding the whole batch
    in "claimed" after its remote writes were made. Returns the ids of the rows that failed."""
    try:
        with conn.begin_nested():
            apply_effects(conn, [e for _, e in effects], now=now)
        return set()
    except Exception as exc:  # noqa: BLE001 - fall back to one savepoint per row
        log.warning("effects_batch_failed", rows=len(effects), error=redact(str(exc))[:300])
    failed: set[int] = set()
    for row, effect in effects:
        try:
            with conn.begin_nested():
                apply_effects(conn, [effect], now=now)
        except Exception as exc:  # noqa: BLE001
            reason = redact(f"done remotely, but its outcome could not be recorded: "
                            f"{type(exc).__name__}: {exc}")[:2000]
            sql.mark_dead(conn, row.id, reason=reason, now=now)
            failed.add(row.id)
            counts["dead"] += 1
            errors.append(f"{row.target} {row.operation} {row.idem_key}: {reason}")
            log.warning("dead_letter", target=row.target, operation=row.operation,
                        key=row.idem_key, reason=reason)
    return failed
