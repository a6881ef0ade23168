"""Contact creates that are not repeated when their first outcome was unknown.

``ContactWrite.key`` is the outbox idempotency key. Before a create is sent its key is marked
in the :class:`connectors._once.IntentLedger` (SQLite, 0600, under ``state_dir``); the remote
id is recorded when the answer arrives. When the same key comes again:

* confirmed → the known id is returned, with no request;
* sent but never confirmed (timeout after send, crash) → the contact is looked up by its
  phones (``find_by_phone``); if found, that id is returned (and confirmed) instead of
  creating a second record. Without phones there is nothing to look up by: it is created again
  (and a warning says so).
"""

from __future__ import annotations

from typing import Callable

import structlog

from syncd.model import Contact, ContactWrite, WriteResult

from ._once import IntentLedger

__all__ = ["settle_creates", "record_creates"]

log = structlog.get_logger()


def settle_creates(ledger: IntentLedger, creates: list[tuple[int, ContactWrite]],
                   find_by_phone: Callable[[str], list[Contact]]) -> dict[int, WriteResult]:
    """Results for creates that already happened; the others are marked as being sent."""
    done: dict[int, WriteResult] = {}
    for i, w in creates:
        intent = ledger.get(w.key)
        if intent is not None and intent.remote_id:
            done[i] = WriteResult(w.key, True, intent.remote_id)
            continue
        if intent is not None:
            found = [c for phone in (w.phones or ()) if phone.startswith("+") for c in find_by_phone(phone)]
            if found:
                remote_id = max(found, key=lambda c: (len(c.id), c.id)).id
                ledger.confirmed(w.key, remote_id)
                done[i] = WriteResult(w.key, True, remote_id)
                continue
            if not w.phones:
                log.warning("contact_create.repeated_without_lookup", key=w.key,
                            reason="an earlier attempt had no answer and the contact has no phone")
        ledger.sending(w.key)
    return done


def record_creates(ledger: IntentLedger, results: list[WriteResult]) -> None:
    """Confirm created ids; forget creates the CRM refused one by one (nothing was made).

    A failure of the whole request raises before this is called, so its keys stay "sent"."""
    for r in results:
        if r.ok and r.id:
            ledger.confirmed(r.key, r.id)
        elif not r.ok:
            ledger.forget(r.key)
