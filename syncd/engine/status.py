"""What ``syncd status``, ``syncd conflicts``, ``syncd dead-letters`` and ``syncd resync`` show
and do. Every function takes an open :class:`~syncd.store.Store`; none calls a remote system.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Sequence

from sqlalchemy import ColumnElement, and_, delete, func, select, update

from ..store import Store
from ..store.tables import (ApiCall, BudgetRow, Conflict, CursorRow, Dirty, Link, LinkPhone, MergeCandidate,
                           Outbox, Run)
from .capture import alerts as stream_alerts
from .guard import list_holds
from .latency import summary as latency_summary
from .outbox import Lane

__all__ = ["status_report", "gauge_report", "metric_gauges", "list_conflicts", "list_dead_letters", "retry_dead_letters",
           "drop_dead_letters", "resync"]

OUTBOX, CURSOR, CONFLICT, RUN, BUDGET = (Outbox.__table__, CursorRow.__table__, Conflict.__table__,
                                         Run.__table__, BudgetRow.__table__)
API = ApiCall.__table__


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def status_report(store: Store, *, limits: dict[str, int | None] | None = None,
                  now: datetime | None = None,
                  intervals: dict[str, timedelta] | None = None) -> dict[str, Any]:
    """Cursors and their lag, outbox by lane and state, dead letters, conflicts, API use today
    (vs ``limits``, the daily budgets, when given), merge backlog, the last run of each job,
    and the streams' alerts (future change times, rows change detection cannot see), the last
    verify report (``drift``) and, given the streams' ``intervals``, each stream's last advance
    and whether it is stuck (``streams``)."""
    now = now or datetime.now(UTC)
    with store.read() as conn:
        cursors = {r.stream: {"value": _iso(r.value), "updated_at": _iso(r.updated_at),
                              "lag_s": round((now - r.value).total_seconds()) if r.value else None}
                   for r in conn.execute(select(CURSOR))}
        outbox = _outbox(conn)
        dead = conn.execute(select(func.count()).select_from(OUTBOX).where(OUTBOX.c.status == "dead")).scalar()
        open_conflicts = conn.execute(select(func.count()).select_from(CONFLICT)
                                      .where(CONFLICT.c.resolved.is_(False))).scalar()
        all_conflicts = conn.execute(select(func.count()).select_from(CONFLICT)).scalar()
        merge_backlog = conn.execute(select(func.count()).select_from(Dirty.__table__)).scalar()
        candidates = conn.execute(select(func.count()).select_from(MergeCandidate.__table__)).scalar()
        without_phone = _without_phone(conn)
        api = _api_today(conn, now)
        last = conn.execute(select(RUN.c.job, func.max(RUN.c.id)).group_by(RUN.c.job)).all()
        runs = {r.job: {"started_at": _iso(r.started_at), "duration_ms": r.duration_ms,
                        "counts": r.counts or {}, "errors": len(r.errors or [])}
                for r in conn.execute(select(RUN).where(RUN.c.id.in_([i for _, i in last])))}
        alerts = [{**a, "at": _iso(a["at"])} for a in stream_alerts(conn)]
        latency = latency_summary(conn, now)
    for system, limit in (limits or {}).items():   # the configured budgets win
        entry = api.setdefault(system, {"used": 0})
        entry["budget"] = limit
        entry["remaining"] = None if limit is None else max(0, limit - entry["used"])
    out = {"cursors": cursors, "outbox": outbox, "dead_letters": dead,
           "conflicts": {"open": open_conflicts, "total": all_conflicts},
           "merge_backlog": merge_backlog, "merge_candidates": candidates,
           "contacts_without_phone": without_phone,
           "api_today": api, "last_runs": runs, "alerts": alerts, "drift": _drift(store),
           "holds": list_holds(store, open_only=True),
           "latency": latency}
    if intervals is not None:
        from ..health import stream_health

        out["streams"] = {s.pop("stream"): {k: _iso(v) if isinstance(v, datetime) else v
                                            for k, v in s.items()}
                          for s in stream_health(store, intervals, now)}
    return out


def gauge_report(store: Store, *, now: datetime | None = None) -> dict[str, Any]:
    """The part of :func:`status_report` a metrics scrape reads (``outbox``, ``api_today``,
    ``drift``, ``holds``, same shapes), without its costlier counts."""
    now = now or datetime.now(UTC)
    with store.read() as conn:
        outbox, api = _outbox(conn), _api_today(conn, now)
    return {"outbox": outbox, "api_today": api, "drift": _drift(store),
            "holds": list_holds(store, open_only=True)}


def metric_gauges(store: Store, *, now: datetime | None = None,
                  price_per_request: float | None = None) -> dict[str, Any]:
    """The gauges of ``/metrics`` (:class:`syncd.web.Metrics`), by name: ``outbox_depth``,
    ``api_requests_today``, ``api_budget_today``, ``api_spend_today`` (None without a
    ``price_per_request``), ``held_operations``, ``drift_records`` (None before the first
    verify) as ``{label: value}``, and ``api_operations_today`` as
    ``{(system, operation, status): requests}``."""
    now = now or datetime.now(UTC)
    report = gauge_report(store, now=now)
    depth = {lane: sum(n for state, n in states.items() if state != "dead")
             for lane, states in report.get("outbox", {}).items()}
    today = report.get("api_today", {})
    used = {system: int(v.get("used", 0)) for system, v in today.items()}
    budget = {system: int(v["budget"]) for system, v in today.items() if v.get("budget")}
    drift = report.get("drift")
    held: dict[str, int] = {"task_removals": 0, "contact_changes": 0}
    for hold in report.get("holds") or []:
        held[hold["kind"]] = held.get(hold["kind"], 0) + int(hold["operations"])
    return {"held_operations": held, "outbox_depth": depth, "api_requests_today": used, "api_budget_today": budget,
            "api_spend_today": ({"okitoki": used.get("okitoki", 0) * price_per_request}
                                if price_per_request is not None else None),
            "api_operations_today": _operations_today(store, now),
            "drift_records": drift["counts"] if drift else None}


def _operations_today(store: Store, now: datetime) -> dict[tuple[str, str, str], int]:
    """(system, operation, status) → requests since 00:00 UTC, from the API journal."""
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    with store.read() as conn:
        rows = conn.execute(select(API.c.system, API.c.operation, API.c.status, func.count())
                            .where(API.c.at >= midnight)
                            .group_by(API.c.system, API.c.operation, API.c.status)).all()
    return {(s, o, str(st) if st is not None else "none"): n for s, o, st, n in rows}


def _outbox(conn: Any) -> dict[str, dict[str, int]]:
    """Outbox rows not done, by lane name and state."""
    outbox: dict[str, dict[str, int]] = {}
    for lane, status, n in conn.execute(select(OUTBOX.c.lane, OUTBOX.c.status, func.count())
                                        .where(OUTBOX.c.status.in_(["pending", "claimed", "held", "dead"]))
                                        .group_by(OUTBOX.c.lane, OUTBOX.c.status)):
        name = Lane(lane).name.lower() if lane in Lane._value2member_map_ else str(lane)
        outbox.setdefault(name, {})[status] = n
    return outbox


def _api_today(conn: Any, now: datetime) -> dict[str, dict[str, Any]]:
    """Requests used today (UTC) per system, with the stored budget and what remains."""
    today = now.astimezone(UTC).date().isoformat()
    return {r.system: {"used": r.used, "budget": r.daily_limit,
                       "remaining": None if r.daily_limit is None else max(0, r.daily_limit - r.used)}
            for r in conn.execute(select(BUDGET).where(BUDGET.c.day == today))}


def _without_phone(conn: Any) -> int:
    """CRM contacts that have no phone number and therefore no Oki-Toki contact."""
    link, phone = Link.__table__, LinkPhone.__table__
    return conn.execute(select(func.count()).select_from(link).where(and_(
        link.c.entity == "contact", link.c.crm_id.is_not(None), link.c.okitoki_id.is_(None),
        link.c.tombstone.is_(False), link.c.hold.is_(None),
        ~select(phone.c.link_id).where(phone.c.link_id == link.c.id).exists()))).scalar() or 0


def _drift(store: Store) -> dict[str, Any] | None:
    from .drift import last_report

    report = last_report(store)
    if report is None:
        return None
    return {**report, "started_at": _iso(report["started_at"]),
            "finished_at": _iso(report["finished_at"])}


def list_conflicts(store: Store, *, limit: int = 500) -> list[dict[str, Any]]:
    """The conflict journal, newest first."""
    with store.read() as conn:
        rows = conn.execute(select(CONFLICT).order_by(CONFLICT.c.id.desc()).limit(limit)).all()
    return [{"id": r.id, "link_id": r.link_id, "field": r.field, "base": r.base, "crm": r.crm_value,
             "okitoki": r.okitoki_value, "rule": r.rule, "winner": r.winner, "at": _iso(r.at),
             "resolved": r.resolved} for r in rows]


def list_dead_letters(store: Store, *, limit: int = 500) -> list[dict[str, Any]]:
    """Quarantined records and operations: what, why, and the payload."""
    with store.read() as conn:
        rows = conn.execute(select(OUTBOX).where(OUTBOX.c.status == "dead")
                            .order_by(OUTBOX.c.id).limit(limit)).all()
    return [{"id": r.id, "lane": Lane(r.lane).name.lower(), "target": r.target,
             "operation": r.operation, "key": r.idem_key, "attempts": r.attempts,
             "reason": r.last_error, "payload": r.payload, "at": _iso(r.updated_at)} for r in rows]


def _dead(ids: Sequence[int] | None) -> ColumnElement[bool]:
    cond = OUTBOX.c.status == "dead"
    if ids is not None:
        cond = and_(cond, OUTBOX.c.id.in_([int(i) for i in ids]))
    return cond


def retry_dead_letters(store: Store, ids: Sequence[int] | None = None, *,
                       now: datetime | None = None) -> int:
    """Queue dead operations again (``ids`` None: all) at ``now`` (default: the wall clock, for
    the CLI). Records quarantined on reading are not operations: they come back when the record
    is read fine (fix it at the source)."""
    now = now or datetime.now(UTC)
    with store.begin() as conn:
        return conn.execute(update(OUTBOX).where(and_(_dead(ids), OUTBOX.c.operation != "ingest"))
                            .values(status="pending", attempts=0, next_attempt_at=now,
                                    updated_at=now)).rowcount or 0


def drop_dead_letters(store: Store, ids: Sequence[int] | None = None) -> int:
    """Delete dead letters (``ids`` None: all); returns how many."""
    with store.begin() as conn:
        return conn.execute(delete(OUTBOX).where(_dead(ids))).rowcount or 0


def resync(store: Store, streams: Sequence[str] | None = None) -> dict[str, Any]:
    """Forget the stream cursors so the next cycles re-read both sides from the start.

    Safe: reading is idempotent (unchanged records are recognised) and every write is an
    outbox row with a stable key, so nothing is written twice.
    """
    with store.begin() as conn:
        cond = CURSOR.c.stream.in_(list(streams)) if streams else CURSOR.c.stream.is_not(None)
        n = conn.execute(delete(CURSOR).where(cond)).rowcount or 0
    return {"cursors_reset": n}
