"""The journals as rows: the API call journal (``api_call``) and the job runs (``run``).

Rows are streamed from the state database (bounded memory however many there are); filters
and groupings are done in SQL. Nothing here holds a secret: the journal never stored one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterator

from sqlalchemy import Select, Text, and_, case, cast, func, select, true

from ..store import Store
from ..store.tables import ApiCall, Run

__all__ = ["Filters", "Report", "journal", "journal_grouped", "journal_hourly", "history",
           "history_grouped", "JOURNAL_COLUMNS", "HISTORY_COLUMNS", "GROUPS"]

API, RUN = ApiCall.__table__, Run.__table__
JOURNAL_COLUMNS = ["time", "system", "operation", "method", "status", "duration_ms", "attempt", "records",
                   "error"]
HISTORY_COLUMNS = ["started_at", "job", "instance", "state", "duration_ms", "counts", "errors"]
#: what ``--by`` may group on, per journal
GROUPS = {"journal": ("day", "hour", "system", "operation", "status"),
          "history": ("day", "hour", "job", "state", "instance")}
BATCH = 2000


@dataclass(frozen=True)
class Filters:
    since: datetime | None = None
    until: datetime | None = None
    system: str | None = None
    operation: str | None = None
    status: str | None = None        # an HTTP code, "none" (no answer) or "error" (>= 400 or none)
    job: str | None = None
    state: str | None = None         # history: ok | error


@dataclass
class Report:
    """Column names and a one-shot iterator of rows (tuples), plus what the export needs."""

    title: str
    columns: list[str]
    rows: Iterator[tuple]
    filters: dict[str, Any] = field(default_factory=dict)


def _bucket(store: Store, column: Any, unit: str) -> Any:
    """The day (``YYYY-MM-DD``) or hour (``YYYY-MM-DDTHH``) of a UTC time column, as text."""
    if store.is_postgres:
        fmt = 'YYYY-MM-DD' if unit == "day" else 'YYYY-MM-DD"T"HH24'
        return func.to_char(column, fmt)
    return func.strftime("%Y-%m-%d" if unit == "day" else "%Y-%m-%dT%H", column)


def _between(column: Any, f: Filters) -> list[Any]:
    """``column`` in [since, until) of the filters."""
    return ([column >= f.since] if f.since is not None else []) + \
        ([column < f.until] if f.until is not None else [])


def _equal_where_given(*pairs: tuple[Any, Any]) -> list[Any]:
    """``column == value`` for each (column, value) whose filter value is given."""
    return [column == value for column, value in pairs if value]


def _journal_where(f: Filters) -> list[Any]:
    c = API.c
    conds: list[Any] = _between(c.at, f) + _equal_where_given((c.system, f.system),
                                                               (c.operation, f.operation))
    if f.status == "none":
        conds.append(c.status.is_(None))
    elif f.status == "error":
        conds.append((c.status.is_(None)) | (c.status >= 400))
    elif f.status:
        conds.append(c.status == int(f.status))
    return conds


def _stream(store: Store, query: Select) -> Iterator[tuple]:
    with store.engine.connect() as conn:
        result = conn.execution_options(stream_results=True, yield_per=BATCH).execute(query)
        for row in result:
            yield tuple(row)


def journal(store: Store, f: Filters) -> Report:
    c = API.c
    query = (select(c.at, c.system, c.operation, c.method, c.status, c.duration_ms, c.attempt, c.records,
                    c.error)
             .where(and_(true(), *_journal_where(f))).order_by(c.at, c.id))
    return Report("API call journal", list(JOURNAL_COLUMNS), _stream(store, query))


def _status_class() -> Any:
    s = API.c.status
    return case((s.is_(None), "no answer"), (s == 429, "429"), (s >= 500, "5xx"), (s >= 400, "4xx"),
                (s >= 300, "3xx"), else_="2xx")


def journal_grouped(store: Store, f: Filters, by: list[str], price: float | None) -> Report:
    """Counts (and spend, for Oki-Toki requests with a price) per group of ``by``."""
    c = API.c
    keys = {"day": _bucket(store, c.at, "day"), "hour": _bucket(store, c.at, "hour"),
            "system": c.system, "operation": c.operation, "status": _status_class()}
    cols = [keys[k].label(k) for k in by]
    okitoki = func.sum(case((c.system == "okitoki", 1), else_=0))
    query = (select(*cols, func.count().label("requests"), okitoki.label("okitoki"),
                    func.sum(c.duration_ms).label("ms"))
             .where(and_(true(), *_journal_where(f))).group_by(*cols).order_by(*cols))
    columns = [*by, "requests", "avg_ms"] + (["cost"] if price is not None else [])

    def rows() -> Iterator[tuple]:
        for row in _stream(store, query):
            *key, n, oki, ms = row
            out = (*key, n, round((ms or 0) / n) if n else 0)
            yield out + ((round((oki or 0) * price, 4),) if price is not None else ())
    return Report("API requests by " + ", ".join(by), columns, rows())


def journal_hourly(store: Store, f: Filters) -> list[tuple[str, str, str, int]]:
    """(hour, operation, status class, requests) for the chart; one row per group."""
    c = API.c
    hour = _bucket(store, c.at, "hour")
    status = _status_class()
    query = (select(hour, c.operation, status, func.count()).where(and_(true(), *_journal_where(f)))
             .group_by(hour, c.operation, status).order_by(hour))
    with store.begin() as conn:
        return [tuple(r) for r in conn.execute(query)]


def _run_state() -> Any:
    # errors is a JSON list; an empty list ("[]") or NULL means the run ended cleanly
    return case((func.coalesce(func.length(cast(RUN.c.errors, Text)), 0) <= 2, "ok"), else_="error")


def _history_where(f: Filters) -> list[Any]:
    c = RUN.c
    return _between(c.started_at, f) + _equal_where_given((c.job, f.job), (_run_state(), f.state))


def history(store: Store, f: Filters) -> Report:
    c = RUN.c
    query = (select(c.started_at, c.job, c.instance, _run_state(), c.duration_ms, c.counts, c.errors)
             .where(and_(true(), *_history_where(f))).order_by(c.started_at, c.id))

    def rows() -> Iterator[tuple]:
        for at, job, instance, state, ms, counts, errors in _stream(store, query):
            counts_text = " ".join(f"{k}={v}" for k, v in sorted((counts or {}).items()))
            yield at, job, instance, state, ms, counts_text, "; ".join(errors or [])
    return Report("Job runs", list(HISTORY_COLUMNS), rows())


def history_grouped(store: Store, f: Filters, by: list[str]) -> Report:
    c = RUN.c
    keys = {"day": _bucket(store, c.started_at, "day"), "hour": _bucket(store, c.started_at, "hour"),
            "job": c.job, "state": _run_state(), "instance": c.instance}
    cols = [keys[k].label(k) for k in by]
    query = (select(*cols, func.count(), func.avg(c.duration_ms), func.max(c.duration_ms))
             .where(and_(true(), *_history_where(f))).group_by(*cols).order_by(*cols))

    def rows() -> Iterator[tuple]:
        for row in _stream(store, query):
            *key, n, avg, top = row
            yield (*key, n, round(float(avg or 0)), top or 0)
    return Report("Job runs by " + ", ".join(by), [*by, "runs", "avg_ms", "max_ms"], rows())
