"""Calls into Bitrix24, once per Oki-Toki ``session_id``.

Native path (scope ``telephony``,
https://apidocs.bitrix24.com/api-reference/telephony/telephony-external-call-register.html):
``telephony.externalcall.register`` → ``telephony.externalcall.finish`` →
``telephony.externalCall.attachRecord`` (when there is a recording link). The call activity
``finish`` creates is then renamed to carry the marker ``[oki-toki:<session_id>]``.

Fallback (no ``telephony`` scope, or ``calls = "activity"``): ``crm.activity.add`` of type
call on the contact, with the same marker in ``SUBJECT`` and ``ORIGIN_ID = oki-toki:<id>``.

Idempotency: before logging, the activities carrying the marker are looked up (one ``batch``
for the whole set), so a retry after an ambiguous outcome never logs the call twice. Bitrix24
itself only guarantees that the same ``register`` parameters within 30 minutes return the same
``CALL_ID``. Every step is a ``batch`` of ≤ 50 commands: about 4-5 requests per 50 calls.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog

from syncd.errors import PermissionDenied
from syncd.model import Call, CallDirection, CallOutcome, WriteResult

from ._records import bx_time
from ._rest import Bitrix24Rest, CommandError

__all__ = ["CallLogger", "marker"]

log = structlog.get_logger()

STATUS_CODE = {CallOutcome.ANSWERED: "200", CallOutcome.NO_ANSWER: "304",
               CallOutcome.BUSY: "486", CallOutcome.FAILED: "480"}
OUTCOME_TEXT = {CallOutcome.ANSWERED: "answered", CallOutcome.NO_ANSWER: "no answer",
                CallOutcome.BUSY: "busy", CallOutcome.FAILED: "failed"}


def marker(session_id: str) -> str:
    """The text every activity of this call carries (brackets: ``#12`` never matches ``#123``)."""
    return f"[oki-toki:{session_id}]"


def _subject(call: Call) -> str:
    kind = "Incoming call" if call.direction is CallDirection.INBOUND else "Outgoing call"
    return f"{kind} {marker(call.session_id)}"


def _description(call: Call) -> str:
    lines = [f"Outcome: {OUTCOME_TEXT[call.outcome]}", f"Duration: {call.duration_s} s",
             f"Talk: {call.talk_s} s"]
    if call.agent:
        lines.append(f"Agent: {call.agent}")
    if call.recording_url:
        lines.append(f"Recording: {call.recording_url}")
    return "\n".join(lines)


class CallLogger:
    """Logs batches of calls; ``mode`` is "auto" (telephony, else activity), "telephony", "activity"."""

    def __init__(self, rest: Bitrix24Rest, *, user_id: int, agent_users: dict[str, int],
                 mode: str = "auto") -> None:
        self.rest = rest
        self.user_id = user_id
        self.agent_users = agent_users
        self.telephony = mode in ("auto", "telephony")
        self.mode = mode

    def _user(self, call: Call) -> int:
        return self.agent_users.get(call.agent or "", self.user_id)

    def log(self, calls: list[Call]) -> list[WriteResult]:
        results: dict[str, WriteResult] = {}
        found = self.rest.batch(
            (f"l{i}", "crm.activity.list",
             {"filter": {"%SUBJECT": marker(c.session_id)}, "select": ["ID", "SUBJECT"]})
            for i, c in enumerate(calls))
        pending: list[tuple[int, Call]] = []
        for i, c in enumerate(calls):
            hit = found[f"l{i}"]
            if c.session_id in results or any(p.session_id == c.session_id for _, p in pending):
                continue  # the same call twice in one batch is logged once
            if isinstance(hit, list) and hit:
                results[c.session_id] = WriteResult(c.session_id, True, str(hit[0]["ID"]))
            elif isinstance(hit, CommandError):
                results[c.session_id] = WriteResult(c.session_id, False, error=str(hit), retriable=True)
            else:
                pending.append((i, c))
        fallback = pending
        if self.telephony and pending:
            fallback = self._telephony(pending, results)
        if fallback:
            self._activities(fallback, results)
        return [results[c.session_id] for c in calls]

    def update(self, calls: list[Call], activity_ids: dict[str, str]) -> list[WriteResult]:
        """Rewrite the activities of logged calls (``crm.activity.update``: description with
        outcome, durations, agent and recording link; end time). An activity id not known
        (or a bare telephony CALL_ID) is found by the call's marker first."""
        ids = {c.session_id: activity_ids.get(c.session_id) for c in calls}
        lookup = [c for c in calls if not str(ids.get(c.session_id) or "").isdigit()]
        results: dict[str, WriteResult] = {}
        if lookup:
            found = self.rest.batch((f"l{i}", "crm.activity.list", {
                "filter": {"%SUBJECT": marker(c.session_id)}, "select": ["ID"]}) for i, c in enumerate(lookup))
            for i, c in enumerate(lookup):
                hit = found[f"l{i}"]
                if isinstance(hit, CommandError):
                    results[c.session_id] = WriteResult(c.session_id, False, error=str(hit), retriable=True)
                elif isinstance(hit, list) and hit:
                    ids[c.session_id] = str(hit[0]["ID"])
                else:
                    results[c.session_id] = WriteResult(c.session_id, False, retriable=False,
                                                        error="no Bitrix24 activity carries this call's marker")
        todo = {c.session_id: c for c in calls if c.session_id not in results}
        updated = self.rest.batch((f"u{n}", "crm.activity.update", {"id": ids[sid], "fields": {
            "SUBJECT": _subject(c), "DESCRIPTION": _description(c),
            "END_TIME": bx_time(c.started_at + timedelta(seconds=c.duration_s))}})
            for n, (sid, c) in enumerate(todo.items()))
        for n, sid in enumerate(todo):
            answer = updated[f"u{n}"]
            results[sid] = (WriteResult(sid, False, error=str(answer), retriable=answer.retriable)
                            if isinstance(answer, CommandError) else WriteResult(sid, True, ids[sid]))
        return [results[c.session_id] for c in calls]

    # -- native ------------------------------------------------------------------------------
    def _telephony(self, pending: list[tuple[int, Call]], results: dict[str, WriteResult]
                   ) -> list[tuple[int, Call]]:
        registered = self.rest.batch([
            (f"r{i}", "telephony.externalcall.register", {
                "USER_ID": self._user(c), "PHONE_NUMBER": c.phone, "CALL_START_DATE": bx_time(c.started_at),
                "TYPE": 2 if c.direction is CallDirection.INBOUND else 1, "CRM_CREATE": 0, "SHOW": 0,
                **({"CRM_ENTITY_TYPE": "CONTACT", "CRM_ENTITY_ID": c.contact_id} if c.contact_id else {}),
            }) for i, c in pending], idempotent=False)
        fallback: list[tuple[int, Call]] = []
        live: list[tuple[int, Call, str]] = []
        for i, c in pending:
            answer = registered[f"r{i}"]
            if isinstance(answer, CommandError) and answer.code == "insufficient_scope":
                if self.mode == "telephony":
                    raise PermissionDenied(str(answer), system="crm", operation="bitrix24 telephony.externalcall.register",
                                           hint="grant the telephony scope or set calls = \"activity\"")
                if self.telephony:
                    log.warning("bitrix24.telephony_scope_missing", fallback="crm.activity.add")
                self.telephony = False
                fallback.append((i, c))
            elif isinstance(answer, CommandError) or not isinstance(answer, dict) or not answer.get("CALL_ID"):
                err = answer if isinstance(answer, CommandError) else CommandError("", "register returned no CALL_ID")
                results[c.session_id] = WriteResult(c.session_id, False, error=str(err), retriable=err.retriable)
            else:
                live.append((i, c, str(answer["CALL_ID"])))
        finished = self.rest.batch([
            (f"f{i}", "telephony.externalcall.finish", {
                "CALL_ID": call_id, "USER_ID": self._user(c), "DURATION": c.duration_s,
                "STATUS_CODE": STATUS_CODE[c.outcome],
                **({"FAILED_REASON": OUTCOME_TEXT[c.outcome]} if c.outcome is not CallOutcome.ANSWERED else {}),
            }) for i, c, call_id in live], idempotent=False)
        followups: list[tuple[str, str, dict[str, Any]]] = []
        for i, c, call_id in live:
            answer = finished[f"f{i}"]
            if isinstance(answer, CommandError):
                results[c.session_id] = WriteResult(c.session_id, False, error=str(answer), retriable=answer.retriable)
                continue
            activity = answer.get("CRM_ACTIVITY_ID") if isinstance(answer, dict) else None
            results[c.session_id] = WriteResult(c.session_id, True, str(activity or call_id))
            if activity:
                followups.append((f"u{i}", "crm.activity.update",
                                  {"id": activity, "fields": {"SUBJECT": _subject(c),
                                                              "DESCRIPTION": _description(c)}}))
            if c.recording_url:
                followups.append((f"a{i}", "telephony.externalCall.attachRecord", {
                    "CALL_ID": call_id, "FILENAME": f"oki-toki-{c.session_id}.mp3",
                    "RECORD_URL": c.recording_url}))
        for name, outcome in self.rest.batch(followups).items():
            if isinstance(outcome, CommandError):   # the call is logged; only a detail is missing
                log.warning("bitrix24.call_followup_failed", command=name, error=str(outcome))
        return fallback

    # -- fallback ----------------------------------------------------------------------------
    def _activities(self, pending: list[tuple[int, Call]], results: dict[str, WriteResult]) -> None:
        commands = []
        for i, c in pending:
            if not c.contact_id:
                results[c.session_id] = WriteResult(
                    c.session_id, False, retriable=False,
                    error="crm.activity.add needs the contact the call belongs to (no contact_id)")
                continue
            end = c.started_at + timedelta(seconds=c.duration_s)
            commands.append((f"c{i}", "crm.activity.add", {"fields": {
                "OWNER_TYPE_ID": 3, "OWNER_ID": c.contact_id, "TYPE_ID": 2,
                "DIRECTION": 1 if c.direction is CallDirection.INBOUND else 2,
                "SUBJECT": _subject(c), "ORIGIN_ID": f"oki-toki:{c.session_id}",
                "START_TIME": bx_time(c.started_at), "END_TIME": bx_time(end), "COMPLETED": "Y",
                "RESPONSIBLE_ID": self._user(c), "DESCRIPTION": _description(c),
                "COMMUNICATIONS": [{"VALUE": c.phone, "ENTITY_ID": c.contact_id, "ENTITY_TYPE_ID": 3}],
            }}))
        added = self.rest.batch(commands, idempotent=False)
        for i, c in pending:
            answer = added.get(f"c{i}")
            if answer is None:
                continue
            if isinstance(answer, CommandError):
                results[c.session_id] = WriteResult(c.session_id, False, error=str(answer), retriable=answer.retriable)
            else:
                results[c.session_id] = WriteResult(c.session_id, True, str(answer))
