"""Walking Oki-Toki's paged reads without losing records that change during the walk.

Oki-Toki pages by offset (``page``, ``per_page``). Offsets are fine for a list that holds
still (the call log: calls only ever arrive), but a contact updated while we walk moves from
its place to the end of the list, every later contact moves one place up, and the one at
the page boundary is never returned; its ``updated_at`` is older than the cursor the caller
keeps, so it would be lost for good.

:func:`walk_by_time` therefore pages by time when it can: after each full page it asks again
from the last page's ``updated_at`` (page 1), dropping the contacts at that boundary second
that it already returned. A record that moves only moves later, into what is still to be
read. This needs the server to sort by ``updated_at`` (our profile says it does). The walk
checks that on every page; if a page is out of order it logs ``okitoki.paging_unordered``
and finishes with plain offsets. When a whole page shares one second it also steps by
offset, since the time filter cannot move past that second; so the guarantee holds as long
as fewer than ``per_page`` (default 1000) records share one ``updated_at`` second, which only a
bulk import could break, and even then only if one of them changes during the walk.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable, Iterator

import structlog

__all__ = ["Fetch", "walk_by_offset", "walk_by_time"]

log = structlog.get_logger("syncd.okitoki")

# fetch(from_time, page) -> (items of that page, number of pages the server announced)
Fetch = Callable[[datetime, int], tuple[list[dict[str, Any]], int]]


def walk_by_offset(fetch: Fetch, start: datetime) -> Iterator[dict[str, Any]]:
    """Pages 1, 2, ... of one query until the announced last page or an empty page."""
    page = 1
    while True:
        items, pages = fetch(start, page)
        yield from items
        if not items or page >= pages:
            return
        page += 1


def _ascending(stamps: list[datetime | None], after: datetime | None) -> bool:
    if any(s is None for s in stamps):
        return False
    previous = after
    for stamp in stamps:
        if previous is not None and stamp < previous:  # type: ignore[operator]
            return False
        previous = stamp
    return True


def walk_by_time(fetch: Fetch, start: datetime, stamp: Callable[[dict[str, Any]], datetime | None],
                 *, operation: str) -> Iterator[dict[str, Any]]:
    """Every record from ``start`` on, each at least once, even if records change meanwhile.

    ``stamp(raw)`` is a record's ``updated_at`` (None when unreadable). A record updated
    during the walk may come twice (old and new state): callers de-duplicate by id.
    """
    cursor, page = start, 1
    by_time = True
    last_stamp: datetime | None = None      # the boundary second the cursor stands on
    boundary_ids: set[str] = set()          # ids already returned at that second
    previous: datetime | None = None        # the last stamp of the previous page
    while True:
        items, pages = fetch(cursor, page)
        stamps = [_safe(stamp, raw) for raw in items]
        if by_time and items and not _ascending(stamps, previous):
            by_time = False
            log.warning("okitoki.paging_unordered", operation=operation, page=page,
                        hint="the server does not sort by updated_at; walking by offset")
        for raw, at in zip(items, stamps):
            if at is not None and at == last_stamp and str(raw.get("id")) in boundary_ids:
                continue   # already returned at the previous page's boundary second
            yield raw
        if not items or page >= pages:
            return
        last = previous = stamps[-1]
        if by_time and last is not None and last_stamp is not None and last == last_stamp:
            boundary_ids |= {str(r.get("id")) for r, s in zip(items, stamps) if s == last}
            page += 1                  # a page within one second: only an offset moves on
        elif by_time and last is not None and last > cursor:
            cursor, page, last_stamp = last, 1, last
            boundary_ids = {str(r.get("id")) for r, s in zip(items, stamps) if s == last}
        else:
            page += 1


def _safe(stamp: Callable[[dict[str, Any]], datetime | None], raw: dict[str, Any]) -> datetime | None:
    try:
        return stamp(raw)
    except (ValueError, TypeError, KeyError):
        return None
