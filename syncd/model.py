"""Canonical records exchanged between the engine, the Oki-Toki client and CRM connectors.

Times are always timezone-aware UTC. Ids are strings on the engine's side whatever the
remote uses (an opaque value a connector gives and gets back). Field names inside
``Contact.fields`` are the *side's own* names (the ``crm = ...`` / ``okitoki = ...`` of
``[contacts.fields]``); the engine maps them to canonical names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

__all__ = [
    "Contact",
    "ContactWrite",
    "Cursor",
    "Page",
    "Unreadable",
    "Untracked",
    "WriteResult",
    "Call",
    "CallDirection",
    "CallOutcome",
    "TaskSpec",
    "Change",
    "JournalEntry",
]


@dataclass(frozen=True)
class Contact:
    """A contact as one side holds it.

    ``phones`` are as stored on that side (not normalised); ``fields`` maps the side's field
    names (dotted paths allowed, e.g. ``details.status``) to plain JSON values;
    ``updated_at`` is the *server's* modification time (never the local clock). ``raw`` is
    the record as the side answered it (in syncd's names where the profile maps them), unknown
    fields included, when the side's reader keeps it (Oki-Toki's does); it is not compared.
    """

    id: str
    fields: dict[str, Any] = field(default_factory=dict)
    phones: tuple[str, ...] = ()
    updated_at: datetime | None = None
    deleted: bool = False
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Cursor:
    """Where a changed-since walk stopped: the (updated_at, id) of the last record returned.

    Records are walked in ascending (updated_at, id) order, so the next page is everything
    strictly after this pair. ``last_id`` is opaque to the engine (connectors compare it in
    their own id order). ``Cursor()`` (both None) means "from the beginning".
    """

    updated_at: datetime | None = None
    last_id: str | None = None


@dataclass(frozen=True)
class Unreadable:
    """A record a walk met but could not read (undecodable bytes, a time that is not a time,
    a value of the wrong type). The engine quarantines it with ``reason``; the walk goes on.

    ``raw`` is what could be read of it (JSON-safe, for the dead letter); ``updated_at`` the
    change time when it could be read (it tells a later, fixed version from this one)."""

    id: str | None
    reason: str
    raw: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None


@dataclass(frozen=True)
class Page:
    """One page of a changed-since walk; ``next`` resumes after it; ``more`` is False at the end.

    ``unreadable`` are records of this stretch of the walk that could not be read: ``next``
    is past them too, so a connector must list them here rather than stop the walk."""

    contacts: list[Contact]
    next: Cursor
    more: bool
    unreadable: list[Unreadable] = field(default_factory=list)


@dataclass(frozen=True)
class Untracked:
    """What a walk by change time cannot see: rows with no change time (``null``) and rows
    whose change time is not a time (``unreadable``, at most the sample asked for; their
    total in ``unreadable_total``)."""

    null: int = 0
    unreadable: list[Unreadable] = field(default_factory=list)
    unreadable_total: int = 0


@dataclass(frozen=True)
class ContactWrite:
    """Create (``id`` None) or update one contact on a side.

    ``key`` is the outbox idempotency key: a create retried with the same key must not make a
    second record (connectors look up by key/phone when the first outcome was ambiguous).
    ``fields`` holds only the fields to change (side names). ``phones`` None means "leave the
    phones alone"; a tuple replaces the set of phones *in place* (no duplicated numbers).
    """

    key: str
    id: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    phones: tuple[str, ...] | None = None


@dataclass(frozen=True)
class WriteResult:
    """The outcome of one record in a batch write.

    ``ok``: done, ``id`` is the record's id on that side. Not ok: ``error`` says why (redacted,
    readable); ``retriable`` says whether the outbox should try again or dead-letter it.
    """

    key: str
    ok: bool
    id: str | None = None
    error: str | None = None
    retriable: bool = False


class CallDirection(StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"   # manual outbound and callbacks
    DIALER = "dialer"       # predictive / progressive dialer


class CallOutcome(StrEnum):
    ANSWERED = "answered"
    NO_ANSWER = "no_answer"
    BUSY = "busy"
    FAILED = "failed"


@dataclass(frozen=True)
class Call:
    """One finished call, identified by Oki-Toki's integer ``session_id`` (kept as str)."""

    session_id: str
    direction: CallDirection
    phone: str                      # the customer's number (ani for inbound, dnis otherwise)
    started_at: datetime            # UTC
    duration_s: int = 0             # whole call, seconds
    talk_s: int = 0                 # connected talk time, seconds
    outcome: CallOutcome = CallOutcome.FAILED
    agent: str | None = None        # agent name or user id
    recording_url: str | None = None
    dialer_id: str | None = None
    task_id: str | None = None
    contact_id: str | None = None   # id on the side this record is sent to (set by the engine)
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TaskSpec:
    """A dialer task to create in Oki-Toki (at most 5 phones, E.164)."""

    dialer_id: str
    phones: tuple[str, ...]
    contact_id: str | None = None
    priority: int | None = None     # 0..2
    ttl_s: int | None = None
    region: str | None = None       # IANA zone; "" disables time-zone correction
    date: datetime | None = None    # when to call (UTC; sent in the account's zone)
    details: dict[str, Any] = field(default_factory=dict)
    user_id: str | None = None
    force_create: bool = False


@dataclass(frozen=True)
class Change:
    """One field-level change the engine decided to make (for dry-run output and journals)."""

    target: str          # "crm" | "okitoki"
    operation: str       # create | update | delete | add_task | remove_task | log_call | dnc_add ...
    record_id: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    reason: str = ""


@dataclass(frozen=True)
class JournalEntry:
    """One request attempt to a remote system, for the API call journal (never a secret).

    ``records`` names the records the request was for (``crm:ID``, ``okitoki:ID``,
    ``session:ID``; bounded, see :mod:`syncd.apirecords`), never a phone number; empty when
    the request was for no record in particular (a page of a walk, a dialer list).
    """

    at: datetime
    system: str
    operation: str
    method: str
    status: int | None  # None: no response (timeout, connection error)
    duration_ms: int
    attempt: int
    error: str | None = None
    records: tuple[str, ...] = ()
