"""The tables of the state database (SQLModel). Changing them needs an alembic migration.

Times are aware UTC (stored naive UTC). JSON columns hold canonical values (field → value).
Every query the engine runs in its hot paths has an index here; nothing scans ``link``.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import Column, Index, Table, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from .types import BigId, JSONValue, UTCDateTime

__all__ = [
    "metadata", "Link", "LinkPhone", "Base", "Dirty", "CursorRow", "Outbox", "Conflict",
    "CallRow", "TaskRow", "Run", "ApiCall", "BudgetRow", "Lease", "MergeCandidate", "StreamAlert",
    "StreamHealth", "VerifyReport", "Hold", "LatencySample",
]

metadata = SQLModel.metadata

if TYPE_CHECKING:
    class _Table(SQLModel):
        # SQLModel sets ``__table__`` on table models at class creation; its stubs do not say so.
        __table__: ClassVar[Table]
else:
    _Table = SQLModel


def _ts(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _json(default: Any = None) -> Any:
    return Field(default=default, sa_column=Column(JSONValue, nullable=True))


class Link(_Table, table=True):
    """One contact known on either side: crm id ⇄ okitoki id. Each side id links at most once."""

    __tablename__ = "link"
    __table_args__ = (
        UniqueConstraint("entity", "crm_id", name="uq_link_crm"),
        UniqueConstraint("entity", "okitoki_id", name="uq_link_okitoki"),
    )
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    entity: str = Field(default="contact", max_length=32)
    crm_id: str | None = Field(default=None, max_length=128)
    okitoki_id: str | None = Field(default=None, max_length=128)
    tombstone: bool = False
    hold: str | None = Field(default=None, max_length=32)   # "merge-candidate": never create across
    created_at: datetime | None = _ts()


class LinkPhone(_Table, table=True):
    """The E.164 numbers each side holds for a link (the index phone matching uses)."""

    __tablename__ = "link_phone"
    phone: str = Field(primary_key=True, max_length=32)
    link_id: int = Field(sa_type=BigId, primary_key=True, index=True)
    side: str = Field(primary_key=True, max_length=8)


class Base(_Table, table=True):
    """Per link: the last agreed canonical values, and the last values seen on each side."""

    __tablename__ = "base"
    link_id: int = Field(sa_type=BigId, primary_key=True)
    agreed: dict | None = _json()
    crm: dict | None = _json()
    okitoki: dict | None = _json()
    crm_updated_at: datetime | None = _ts()
    okitoki_updated_at: datetime | None = _ts()
    # When we last wrote to each side (local clock): a read fetched before it may be stale.
    crm_written_at: datetime | None = _ts()
    okitoki_written_at: datetime | None = _ts()


class Dirty(_Table, table=True):
    """Links with a new observation the merge has not looked at yet (``seq`` guards races)."""

    __tablename__ = "dirty"
    link_id: int = Field(sa_type=BigId, primary_key=True)
    seq: int = 0


class CursorRow(_Table, table=True):
    """Where a stream's walk stands: server time ``value``, tie-break id, ids at the boundary."""

    __tablename__ = "cursor"
    stream: str = Field(primary_key=True, max_length=64)
    value: datetime | None = _ts()
    last_id: str | None = Field(default=None, max_length=128)
    boundary_ids: list | None = _json()
    updated_at: datetime | None = _ts()


class Outbox(_Table, table=True):
    """One outbound operation. ``idem_key`` is stable across retries and unique."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_claim", "status", "lane", "next_attempt_at"),
        Index("ix_outbox_link", "link_id", "status"),
    )
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    lane: int = 0
    target: str = Field(max_length=16)
    operation: str = Field(max_length=32)
    link_id: int | None = Field(default=None, sa_type=BigId)
    payload: dict | None = _json()
    idem_key: str = Field(max_length=200, unique=True)
    status: str = Field(default="pending", max_length=16)
    attempts: int = 0
    next_attempt_at: datetime | None = _ts()
    claimed_by: str | None = Field(default=None, max_length=128)
    claimed_until: datetime | None = _ts()
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime | None = _ts()
    updated_at: datetime | None = _ts()


class Conflict(_Table, table=True):
    """A field changed on both sides since the base: what each side had, the rule, the winner."""

    __tablename__ = "conflict"
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    link_id: int = Field(sa_type=BigId, index=True)
    field: str = Field(max_length=128)
    base: Any = _json()
    crm_value: Any = _json()
    okitoki_value: Any = _json()
    rule: str = Field(max_length=16)
    winner: str = Field(max_length=16)       # crm | okitoki | held
    at: datetime | None = _ts()
    resolved: bool = Field(default=False, index=True)


class CallRow(_Table, table=True):
    """One Oki-Toki call (``session_id``) and what became of it in the CRM."""

    __tablename__ = "call"
    session_id: str = Field(primary_key=True, max_length=64)
    link_id: int | None = Field(default=None, sa_type=BigId)
    phone: str | None = Field(default=None, max_length=32)
    started_at: datetime | None = _ts()
    outcome: str | None = Field(default=None, max_length=16)
    crm_activity_id: str | None = Field(default=None, max_length=128)
    state: str = Field(default="pending", max_length=16)  # pending | logged | skipped | dead
    created_at: datetime | None = _ts()
    # What the CRM activity shows (engine.calls.fingerprint of the call as last read) and how
    # many times it changed after it was first read (part of each update's idempotency key).
    fingerprint: str | None = Field(default=None, max_length=32)
    revision: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class TaskRow(_Table, table=True):
    """The dialer task of a link in one dialer (one row per pair; ``generation`` counts re-creates)."""

    __tablename__ = "task"
    __table_args__ = (UniqueConstraint("link_id", "dialer_id", name="uq_task_link_dialer"),)
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    link_id: int = Field(sa_type=BigId)
    dialer_id: str = Field(max_length=32)
    rule: str = Field(max_length=128)
    task_id: str | None = Field(default=None, max_length=64, index=True)
    phones: list | None = _json()
    state: str = Field(default="creating", max_length=16)  # creating | active | removing | removed
    #                                                        | kept (removal dropped by an operator)
    generation: int = 1
    updated_at: datetime | None = _ts()


class Run(_Table, table=True):
    """One job run: counts, errors, duration."""

    __tablename__ = "run"
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    job: str = Field(max_length=64, index=True)
    instance: str | None = Field(default=None, max_length=128)
    started_at: datetime | None = _ts(index=True)
    duration_ms: int = 0
    counts: dict | None = _json()
    errors: list | None = _json()


class ApiCall(_Table, table=True):
    """The API journal: every request attempt to a remote (never a token, never a body)."""

    __tablename__ = "api_call"
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    at: datetime | None = _ts(index=True)
    system: str = Field(max_length=16)
    operation: str = Field(max_length=64)
    method: str = Field(max_length=8)
    status: int | None = None
    duration_ms: int = 0
    attempt: int = 1
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # the records the request was for: "crm:ID,okitoki:ID,session:ID,...,+N" (no phone numbers)
    records: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class BudgetRow(_Table, table=True):
    """Requests spent per system per UTC day (the persistent daily budget)."""

    __tablename__ = "budget"
    system: str = Field(primary_key=True, max_length=16)
    day: str = Field(primary_key=True, max_length=10)   # YYYY-MM-DD, UTC
    used: int = 0
    daily_limit: int | None = None                      # the budget in force (for `syncd status`)


class Lease(_Table, table=True):
    """Leadership of a stream among several instances; expires unless renewed."""

    __tablename__ = "lease"
    name: str = Field(primary_key=True, max_length=64)
    holder: str = Field(max_length=128)
    expires_at: datetime | None = _ts()


class MergeCandidate(_Table, table=True):
    """A record whose number matches several contacts on the other side: not linked, reported."""

    __tablename__ = "merge_candidate"
    __table_args__ = (UniqueConstraint("side", "record_id", name="uq_merge_candidate"),)
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    side: str = Field(max_length=8)
    record_id: str = Field(max_length=128)
    phone: str | None = Field(default=None, max_length=32)
    candidates: list | None = _json()
    at: datetime | None = _ts()


class StreamAlert(_Table, table=True):
    """Something a stream's change walk met that the operator must hear of: change times in
    the future, rows change detection cannot see. Replaced at each check; shown by status."""

    __tablename__ = "stream_alert"
    stream: str = Field(primary_key=True, max_length=64)
    kind: str = Field(primary_key=True, max_length=32)   # future_time | untracked_null | unreadable_time
    count: int = 0
    sample: list | None = _json()                        # a few record ids (and what was found)
    at: datetime | None = _ts()


class StreamHealth(_Table, table=True):
    """Per stream (job): when it last advanced, and how its last run ended (``syncd status``)."""

    __tablename__ = "stream_health"
    stream: str = Field(primary_key=True, max_length=64)
    advanced_at: datetime | None = _ts()     # end of the last run that completed its work
    run_at: datetime | None = _ts()          # end of the last run, whatever its outcome
    outcome: str = Field(default="ok", max_length=16)   # ok | deferred | failed | fatal
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))  # redacted
    instance: str | None = Field(default=None, max_length=128)


class VerifyReport(_Table, table=True):
    """One ``syncd verify`` run: drift counts and a bounded sample of record ids per kind."""

    __tablename__ = "verify_report"
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    started_at: datetime | None = _ts(index=True)
    finished_at: datetime | None = _ts()
    complete: bool = True                    # False: stopped early (budget, lease, error)
    repaired: bool = False
    counts: dict | None = _json()            # kind → records
    samples: dict | None = _json()           # kind → [record ids] (bounded; never values)
    notes: list | None = _json()             # why it is partial; what was not checked
    requests: dict | None = _json()          # system → requests spent by the walks


class Hold(_Table, table=True):
    """A flood the guard held: outbox rows (status ``held``, ``claimed_by = "hold:<id>"``)
    that wait for an operator to release or drop them (``syncd holds``)."""

    __tablename__ = "hold"
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    kind: str = Field(max_length=32)                      # task_removals | contact_changes
    count: int = 0                                        # outbox rows held
    contacts: int = 0                                     # distinct contacts they touch
    reason: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    state: str = Field(default="held", max_length=16)     # held | released | dropped
    created_at: datetime | None = _ts()
    decided_at: datetime | None = _ts()


class LatencySample(_Table, table=True):
    """How long one change took from its source to its effect (``flow``: lead_to_task,
    call_to_crm, crm_to_okitoki, okitoki_to_crm), for ``syncd status``; a rolling sample
    (housekeeping keeps a day and at most ``engine.latency.KEEP`` rows a flow)."""

    __tablename__ = "latency_sample"
    __table_args__ = (Index("ix_latency_sample_flow_at", "flow", "at"),)
    id: int | None = Field(default=None, sa_type=BigId, primary_key=True)
    flow: str = Field(max_length=32)
    at: datetime | None = _ts()             # when the effect settled
    seconds: float = 0.0
