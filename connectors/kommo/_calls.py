"""Calls as Kommo call records (``POST /api/v4/calls``,
https://developers.kommo.com/reference/add-calls).

Kommo attaches a call to the contact that has its phone number; ``uniq`` (here
``uniq_prefix + session_id``) guards repeats, so logging a call twice leaves one record.
A number that matches no contact comes back in ``errors`` for that entry only.
"""

from __future__ import annotations

from typing import Any

from syncd.model import Call, CallDirection, CallOutcome, WriteResult
from syncd.redact import redact

__all__ = ["call_items", "call_results", "note_items", "CALL_STATUS"]

# 1 left a message, 2 call back later, 3 not present, 4 talked, 5 wrong number, 6 no answer, 7 busy
CALL_STATUS = {CallOutcome.ANSWERED: 4, CallOutcome.NO_ANSWER: 6, CallOutcome.BUSY: 7,
               CallOutcome.FAILED: 6}
RESULT_TEXT = {CallOutcome.ANSWERED: "answered", CallOutcome.NO_ANSWER: "no answer",
               CallOutcome.BUSY: "busy", CallOutcome.FAILED: "failed"}


def call_items(calls: list[Call], options: Any) -> list[dict[str, Any]]:
    """The request body: one item per distinct session_id (request_id = its index)."""
    items: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, c in enumerate(calls):
        if c.session_id in seen:
            continue
        seen.add(c.session_id)
        item: dict[str, Any] = {
            "request_id": str(i),
            "direction": "inbound" if c.direction is CallDirection.INBOUND else "outbound",
            "uniq": f"{options.uniq_prefix}{c.session_id}",
            "duration": int(c.duration_s),
            "source": options.call_source,
            "phone": c.phone,
            "call_status": CALL_STATUS[c.outcome],
            "call_result": RESULT_TEXT[c.outcome] + (f", agent {c.agent}" if c.agent else ""),
            "created_at": int(c.started_at.timestamp()),
        }
        if c.recording_url:
            item["link"] = c.recording_url
        user = options.agent_users.get(c.agent or "", options.responsible_user_id)
        if user:
            item["responsible_user_id"] = user
        items.append(item)
    return items


def call_results(calls: list[Call], body: dict[str, Any], rejected: dict[str, str]) -> list[WriteResult]:
    """One WriteResult per input call (duplicates share the first one's outcome)."""
    done = {str(r.get("request_id")): r for r in (body.get("_embedded") or {}).get("calls") or []}
    errors = {str(e.get("request_id")): e for e in body.get("errors") or []}
    first: dict[str, str] = {}
    for i, c in enumerate(calls):
        first.setdefault(c.session_id, str(i))
    out: list[WriteResult] = []
    for c in calls:
        rid = first[c.session_id]
        if rid in done:
            out.append(WriteResult(c.session_id, True, str(done[rid].get("id"))))
        elif rid in rejected:
            out.append(WriteResult(c.session_id, False, error=redact(rejected[rid])))
        elif rid in errors:
            err = errors[rid]
            status = int(err.get("status") or 0)
            reason = redact(str(err.get("detail") or err.get("title") or "refused"))
            if status == 404:
                reason = f"no Kommo contact has the number {c.phone} ({reason})"
            out.append(WriteResult(c.session_id, False, error=reason, retriable=status >= 500 or status == 429))
        else:
            out.append(WriteResult(c.session_id, False, error="Kommo returned nothing for this call",
                                   retriable=True))
    return out


def note_items(calls: list[Call], note_ids: dict[str, str], options: Any) -> list[dict[str, Any]]:
    """``PATCH /api/v4/contacts/notes`` items rewriting the call notes ``POST /api/v4/calls``
    made (https://developers.kommo.com/reference/edit-notes): the note id, its type
    (``call_in``/``call_out``) and the call's current params; request_id = the session id."""
    items = []
    for item, c in zip(call_items(calls, options), calls):
        params = {k: item[k] for k in ("uniq", "duration", "source", "phone", "call_status", "call_result")}
        params["link"] = c.recording_url or ""
        items.append({"id": int(note_ids[c.session_id]), "request_id": c.session_id,
                      "note_type": "call_in" if item["direction"] == "inbound" else "call_out",
                      "params": params})
    return items
