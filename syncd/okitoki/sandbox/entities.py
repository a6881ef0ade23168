"""The records a sandbox company owns. Plain slotted dataclasses; times are unix seconds (UTC).

``to_dict``/``from_dict`` give the JSON shape used by the data file and ``/_sandbox/state``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

__all__ = ["Company", "User", "Dialer", "Task", "PhoneList", "Contact", "Call",
           "to_dict", "from_dict", "TASK_PENDING", "TASK_DONE", "TASK_DELETED"]

TASK_PENDING, TASK_DONE, TASK_DELETED = "pending", "done", "deleted"


@dataclass(slots=True)
class Company:
    id: int
    name: str
    timezone: str


@dataclass(slots=True)
class User:
    id: int
    company_id: int
    name: str
    token: str | None = None
    operator: bool = True


@dataclass(slots=True)
class Dialer:
    id: int
    company_id: int
    name: str
    #: Refuse a task whose phone is already in a pending task of this dialer (unless forced).
    unique: bool = True
    state: str = "enabled"
    operator_ids: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Task:
    id: int
    company_id: int
    dialer_id: int
    phones: list[str]
    status: str = TASK_PENDING
    contact_id: int | None = None
    bp_id: int | None = None
    date: int | None = None
    import_id: int | None = None
    priority: int | None = None
    region: str | None = None
    ttl: int | None = None
    user_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)
    created_at: int = 0
    finished_at: int | None = None
    session_id: int | None = None


@dataclass(slots=True)
class PhoneList:
    id: int
    company_id: int
    name: str
    values: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Contact:
    id: int
    company_id: int
    name: str = ""
    phones: list[str] = field(default_factory=list)
    email: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    created_at: int = 0
    updated_at: int = 0
    #: Deleted in Oki-Toki (admin only): exported once more with ``deleted: true``, then gone
    #: for the API (401), as a tombstone a reader can see.
    deleted: bool = False


@dataclass(slots=True)
class Call:
    """One call-log row in Oki-Toki's vocabulary plus the sandbox's visibility bookkeeping."""

    session_id: int
    company_id: int
    call_type: str  # I inbound, P dialer, O outbound, C callback
    ani: str
    dnis: str
    stime: int
    etime: int
    result: str  # answered | no_answer | busy | failed
    connect_time: int | None = None
    atime: int = 0
    ctime: int = 0
    queue_id: int | None = None
    dialer_id: int | None = None
    task_id: int | None = None
    contact_id: int | None = None
    user_id: int | None = None
    disconnect_reason: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    record_url: str | None = None
    #: Sandbox clock (unix seconds, float) from which ``calls/log`` shows the call.
    visible_at: float = 0.0
    #: Fields that change once, at ``late_at`` (sandbox clock); None when already applied.
    late_fields: dict[str, Any] | None = None
    late_at: float | None = None


T = TypeVar("T")


def to_dict(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in data.items() if k in names})
