"""Changed-since for a list that has no updated-since filter: a full scan in bounded memory.

BottleCRM lists contacts newest-created first with limit/offset and no filter on
``updated_at``. A contact created long ago may have been edited a second ago, so there is no
early stop: the scan reads every page and keeps only the ``limit + 1`` smallest
(updated_at, id) keys strictly after the cursor, in a sorted list (bisect), so memory is
O(limit + page size) whatever the number of contacts.

Cost per call: ``ceil(total / page_size)`` list requests (plus a restart when the list
shifted under the scan); a walk over K changes costs ``ceil(K / limit)`` such scans.

Two hazards of scanning a live list, and what is done about them:

* Offsets shift when contacts are created (rows move right: a row is seen twice, harmless,
  duplicates are dropped) or deleted (rows move left: a row could be skipped). Pages
  overlap by a few rows and each page must contain the last id of the previous one; if it
  does not, the list moved more than the overlap and the scan starts again.
* A contact edited *during* the scan may have been read in its old version while another,
  later edit moves the cursor past its new ``updated_at``. So rows whose ``updated_at`` is
  not older than the server's time at the first request (``Date`` header, whole seconds)
  minus ``settle`` seconds are left for the next poll: they are younger than the scan.
"""

from __future__ import annotations

import bisect
import email.utils
from datetime import UTC, datetime, timedelta
from typing import Any, Callable

import httpx

from syncd.errors import TransientError
from syncd.model import Cursor

__all__ = ["scan_changed", "parse_time", "OVERLAP", "MAX_RESTARTS"]

OVERLAP = 5
MAX_RESTARTS = 3

Fetch = Callable[[int, int], httpx.Response]   # (offset, limit) → the list response


def parse_time(value: str | None) -> datetime | None:
    """BottleCRM's ISO time (``...Z``) → aware UTC datetime."""
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _server_time(response: httpx.Response) -> datetime | None:
    try:
        when = email.utils.parsedate_to_datetime(response.headers.get("Date", ""))
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _key(row: dict[str, Any]) -> tuple[datetime, str]:
    return (parse_time(row.get("updated_at")) or datetime.min.replace(tzinfo=UTC), str(row["id"]))


def scan_changed(fetch: Fetch, *, after: Cursor, limit: int, page_size: int,
                 settle: float) -> tuple[list[dict[str, Any]], bool]:
    """The first ``limit`` rows after ``after`` in (updated_at, id) order, and whether more exist."""
    for _ in range(MAX_RESTARTS):
        result = _scan_once(fetch, after=after, limit=limit, page_size=page_size, settle=settle)
        if result is not None:
            return result
    raise TransientError(f"the contact list kept shifting during {MAX_RESTARTS} scans",
                         system="crm", operation="changed contacts (scan)")


def _scan_once(fetch: Fetch, *, after: Cursor, limit: int, page_size: int,
               settle: float) -> tuple[list[dict[str, Any]], bool] | None:
    floor = (after.updated_at, after.last_id or "") if after.updated_at is not None else None
    keys: list[tuple[datetime, str]] = []     # sorted, at most limit + 1
    rows: dict[str, dict[str, Any]] = {}
    horizon: datetime | None = None
    offset, previous_last = 0, None
    while True:
        response = fetch(offset, page_size)
        if horizon is None and settle > 0:
            now = _server_time(response)
            horizon = now - timedelta(seconds=settle) if now else None
        body = response.json()
        page = body.get("results") or []
        ids = [str(r["id"]) for r in page]
        if previous_last is not None and page and previous_last not in ids:
            return None  # rows moved left by more than the overlap: start again
        for row in page:
            key = _key(row)
            if key[1] in rows or (floor is not None and key <= floor):
                continue
            if horizon is not None and key[0] >= horizon:
                continue
            if len(keys) > limit and key >= keys[-1]:
                continue
            bisect.insort(keys, key)
            rows[key[1]] = row
            if len(keys) > limit + 1:
                dropped = keys.pop()
                del rows[dropped[1]]
        total = int(body.get("count") or 0)
        if len(page) < page_size or offset + len(page) >= total:
            break
        previous_last = ids[-1]
        offset += len(page) - OVERLAP
    more = len(keys) > limit
    return [rows[k[1]] for k in keys[:limit]], more
