"""Pipedrive call logs: how one Oki-Toki call becomes a ``POST /v1/callLogs`` body."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd.model import Call, CallDirection, CallOutcome

__all__ = ["call_log_request", "marker"]

OUTCOME = {CallOutcome.ANSWERED: "connected", CallOutcome.NO_ANSWER: "no_answer",
           CallOutcome.BUSY: "busy", CallOutcome.FAILED: "no_answer"}


def marker(session_id: str) -> str:
    """The text in a call log's note that names its Oki-Toki session (the idempotency key)."""
    return f"[oki-toki session={session_id}]"


def _pd_time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def call_log_request(call: Call, user_id: int | None = None) -> dict[str, Any]:
    """The JSON body logging ``call``: start/end in UTC ``YYYY-MM-DD HH:MM:SS``, duration in
    seconds, the session marker in the note. ValueError for an unknown direction or outcome
    (a call read back from the outbox may carry plain strings) or a non-numeric person id."""
    call = dataclasses.replace(call, direction=CallDirection(call.direction),
                               outcome=CallOutcome(call.outcome))
    end = call.started_at + timedelta(seconds=call.duration_s)
    note = (f"Oki-Toki {call.direction.value} call, {call.outcome.value}, talk {call.talk_s} s"
            + (f", agent {call.agent}" if call.agent else "")
            + (f', <a href="{call.recording_url}">recording</a>' if call.recording_url else "")
            + f" {marker(call.session_id)}")
    body: dict[str, Any] = {
        "outcome": OUTCOME[call.outcome], "to_phone_number": call.phone,
        "start_time": _pd_time(call.started_at), "end_time": _pd_time(end),
        "duration": str(call.duration_s), "subject": f"Oki-Toki call {call.session_id}", "note": note}
    if call.direction == CallDirection.INBOUND:
        body["from_phone_number"] = call.phone
    if call.contact_id:
        body["person_id"] = int(call.contact_id)
    if user_id is not None:
        body["user_id"] = user_id
    return body
