"""Which records an API request is for, as the request journal shows them.

The engine says, around each record's write (or a batch's), which records it is about; the
shared HTTP layer (:mod:`syncd.http`) reads that when it journals each attempt, so a request
made deep in a connector is still journaled with its records without an argument threaded
through every connector. The value lives in a context variable: a thread or a task started
with a copy of the context (``contextvars.copy_context``) sees it, others do not.

Record ids are phone-free: ``crm:ID``, ``okitoki:ID`` (contact ids), ``session:ID`` (an
Oki-Toki call), ``link:ID`` (syncd's own link, only when neither side's id is known yet). A
batch names its first :data:`MAX_RECORDS` records and ``+N`` for the rest.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterable, Iterator, Sequence

__all__ = ["MAX_RECORDS", "record_ids", "about", "bound_records", "for_records", "render",
           "parse"]

MAX_RECORDS = 50
_BOUND: ContextVar[tuple[str, ...]] = ContextVar("syncd_api_records", default=())


def record_ids(*, crm: object = None, okitoki: object = None, session: object = None,
               link: object = None) -> tuple[str, ...]:
    """One record's ids as journal tokens (``link`` only when no side id is known)."""
    out = tuple(f"{kind}:{_clean(value)}" for kind, value in
                (("crm", crm), ("okitoki", okitoki), ("session", session)) if value not in (None, ""))
    if not any(t.startswith(("crm:", "okitoki:")) for t in out) and link is not None:
        out = (f"link:{_clean(link)}", *out)
    return out


def _clean(value: object) -> str:
    # the journal column separates ids with commas; an id never needs one of its own
    return "".join("_" if ch in ", \t\r\n" else ch for ch in str(value))[:100]


def _bounded(records: Iterable[Sequence[str]]) -> tuple[str, ...]:
    out: list[str] = []
    seen: set[tuple[str, ...]] = set()
    extra = 0
    for record in records:
        key = tuple(record)
        if not key or key in seen:
            continue
        seen.add(key)
        if len(seen) > MAX_RECORDS:
            extra += 1
            continue
        out.extend(t for t in key if t not in out)
    return (*out, f"+{extra}") if extra else tuple(out)


def about(*records: Sequence[str]) -> None:
    """From now on in this context, requests are for ``records`` (each a :func:`record_ids`).

    For a handler that runs in a context of its own (the outbox's handlers do: see
    :func:`syncd.engine.inflight.run_group`) and says, before each request, which records it
    is for. Elsewhere use :func:`for_records`."""
    _BOUND.set(_bounded(records))


@contextmanager
def for_records(records: Iterable[Sequence[str]]) -> Iterator[None]:
    """Requests made inside the block are for ``records``."""
    token = _BOUND.set(_bounded(records))
    try:
        yield
    finally:
        _BOUND.reset(token)


def bound_records() -> tuple[str, ...]:
    """The records requests made now are for (empty: none in particular)."""
    return _BOUND.get()


def render(records: Sequence[str]) -> str | None:
    """The journal column's text: ids separated by commas (None for none)."""
    text = ",".join(records)
    if len(text) > 4000:      # only with absurdly long ids: cut at an id's end
        text = text[:4000].rsplit(",", 1)[0]
    return text or None


def parse(text: str | None) -> list[str]:
    """The ids of a journal column's text."""
    return [t for t in (text or "").split(",") if t]
