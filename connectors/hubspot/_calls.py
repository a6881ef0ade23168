"""HubSpot call objects: how one Oki-Toki call becomes a ``POST /crm/v3/objects/calls`` body."""

from __future__ import annotations

import dataclasses
from datetime import UTC
from typing import Any

from syncd.model import Call, CallDirection, CallOutcome

__all__ = ["call_request", "typed_call"]

CALL_TO_CONTACT = 194      # HUBSPOT_DEFINED association type call → contact
STATUS = {CallOutcome.ANSWERED: "COMPLETED", CallOutcome.NO_ANSWER: "NO_ANSWER",
          CallOutcome.BUSY: "BUSY", CallOutcome.FAILED: "FAILED"}
# HubSpot's default call outcomes (hs_call_disposition GUIDs).
DISPOSITION = {CallOutcome.ANSWERED: "f240bbac-87c9-4f6e-bf70-924b57d47db7",
               CallOutcome.NO_ANSWER: "73a0d17f-1163-4015-bdd5-ec830791da20",
               CallOutcome.BUSY: "9d9162e7-6cf3-4944-bf63-4dff82258764"}


def typed_call(call: Call) -> Call:
    """``call`` with real enums (a call read back from the outbox may carry plain strings);
    ValueError names an unknown direction or outcome."""
    return dataclasses.replace(call, direction=CallDirection(call.direction),
                               outcome=CallOutcome(call.outcome))


def call_request(call: Call, key_property: str) -> dict[str, Any]:
    """The JSON body creating ``call``: times in UTC, duration in milliseconds, the session id
    in ``key_property``, associated to ``call.contact_id`` when set."""
    number_property = "hs_call_from_number" if call.direction == CallDirection.INBOUND else "hs_call_to_number"
    props = {
        "hs_timestamp": call.started_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "hs_call_direction": "INBOUND" if call.direction == CallDirection.INBOUND else "OUTBOUND",
        "hs_call_duration": str(call.duration_s * 1000),
        "hs_call_status": STATUS[call.outcome],
        "hs_call_title": f"Oki-Toki call {call.session_id}",
        "hs_call_body": call_body(call),
        key_property: call.session_id,
        number_property: call.phone,
    }
    if call.outcome in DISPOSITION:
        props["hs_call_disposition"] = DISPOSITION[call.outcome]
    if call.recording_url:
        props["hs_call_recording_url"] = call.recording_url
    body: dict[str, Any] = {"properties": props}
    if call.contact_id:
        body["associations"] = [{"to": {"id": call.contact_id}, "types": [
            {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": CALL_TO_CONTACT}]}]
    return body


def call_body(call: Call) -> str:
    parts = [f"Oki-Toki session {call.session_id}", f"{call.direction.value}, {call.outcome.value}",
             f"talk {call.talk_s} s of {call.duration_s} s"]
    parts += [f"{k} {v}" for k, v in (("agent", call.agent), ("dialer", call.dialer_id),
                                      ("task", call.task_id)) if v]
    return "; ".join(parts)
