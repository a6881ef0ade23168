"""``syncd trace``: one contact's story, from the state database alone (no remote is called).

"Why was this customer called, or not?" The link and both ids; each mapped field as the CRM
and Oki-Toki last showed it and the value both agreed on; every ``[[dialer]]`` rule with the
reason it matches or not; the dialer tasks; and, in time order, what syncd queued and did for
it (task creates and removals, contact writes, status changes, do-not-call), the calls logged,
conflicts, dead letters and holds, and the API requests made for it (the journal rows naming
its CRM or Oki-Toki id, or one of its calls' session ids).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, literal, or_, select

from ..config import Config
from ..errors import InvalidRecord
from ..phones import normalize
from ..store import Store
from ..store.tables import ApiCall, CallRow, Conflict, MergeCandidate, TaskRow
from .context import BASE, LINK, OUTBOX, PHONE
from .mapping import DNC, PHONES
from .rules import unmet

__all__ = ["trace", "find_links", "render_trace"]

TASK, CALL, CONFLICT, CANDIDATE, API = (TaskRow.__table__, CallRow.__table__, Conflict.__table__,
                                        MergeCandidate.__table__, ApiCall.__table__)
MAX_EVENTS = 500


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def find_links(store: Store, config: Config, who: str) -> tuple[list[int], str]:
    """The link ids ``who`` names (``crm:ID``, ``okitoki:ID`` or a phone number) and how it
    was read. ValueError when it names nothing that can be looked up."""
    side, _, ident = who.partition(":")
    with store.begin() as conn:
        if side in ("crm", "okitoki") and ident:
            column = LINK.c.crm_id if side == "crm" else LINK.c.okitoki_id
            return [r[0] for r in conn.execute(select(LINK.c.id).where(column == ident))], f"{side} id {ident}"
        try:
            phone = normalize(who, config.contacts.default_region)
        except InvalidRecord as exc:
            raise ValueError(f'"{who}" is neither crm:ID, okitoki:ID nor a phone number ({exc.reason})') from None
        ids = sorted({r[0] for r in conn.execute(select(PHONE.c.link_id).where(PHONE.c.phone == phone))})
        return ids, f"phone {phone}"


def _rules(config: Config, agreed: dict[str, Any], link: Any) -> list[dict[str, Any]]:
    out = []
    for rule in config.dialer:
        reasons = (["the link is retired (the contact was deleted on a side)"] if link.tombstone else []) \
            + ([f"held: {link.hold}"] if link.hold else []) + unmet(rule, agreed)
        why = ("every condition holds: " + ", ".join(f"{k} = {agreed.get(k)!r}" for k in rule.when)
               if not reasons else "; ".join(reasons))
        out.append({"rule": rule.name, "dialer_id": str(rule.dialer_id), "matches": not reasons, "why": why})
    return out


def _events(conn: Any, link: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for r in conn.execute(select(OUTBOX).where(OUTBOX.c.link_id == link.id).order_by(OUTBOX.c.id)
                          .limit(MAX_EVENTS)):
        events.append({"at": _iso(r.created_at), "kind": "queued", "operation": r.operation,
                       "target": r.target, "status": r.status, "attempts": r.attempts,
                       "detail": _payload_summary(r.payload), "error": r.last_error,
                       "finished_at": _iso(r.updated_at) if r.status in ("done", "dead") else None})
    keys = [f"ingest:{side}:{ident}:" for side, ident in (("crm", link.crm_id), ("okitoki", link.okitoki_id)) if ident]
    if keys:
        cond = or_(*(OUTBOX.c.idem_key.startswith(k) for k in keys))
        for r in conn.execute(select(OUTBOX).where(and_(OUTBOX.c.operation == "ingest", cond)).limit(50)):
            events.append({"at": _iso(r.created_at), "kind": "quarantined", "operation": "ingest",
                           "target": r.target, "status": r.status, "error": r.last_error})
    for r in conn.execute(select(CALL).where(CALL.c.link_id == link.id).order_by(CALL.c.started_at)
                          .limit(MAX_EVENTS)):
        events.append({"at": _iso(r.started_at), "kind": "call", "session_id": r.session_id,
                       "outcome": r.outcome, "status": r.state, "crm_activity_id": r.crm_activity_id})
    for r in conn.execute(select(CONFLICT).where(CONFLICT.c.link_id == link.id).order_by(CONFLICT.c.id)):
        events.append({"at": _iso(r.at), "kind": "conflict", "field": r.field, "base": r.base,
                       "crm": r.crm_value, "okitoki": r.okitoki_value, "rule": r.rule,
                       "winner": r.winner, "status": "resolved" if r.resolved else "open"})
    events += _api_calls(conn, link)
    events.sort(key=lambda e: (e["at"] or "", e["kind"]))
    return events


def _api_calls(conn: Any, link: Any) -> list[dict[str, Any]]:
    """The journal's requests for this link: those naming its ids or its calls' sessions, made
    since the link exists (the time index keeps the scan to that stretch of the journal)."""
    ids = [f"link:{link.id}"] + [f"{side}:{ident}" for side, ident in
                                 (("crm", link.crm_id), ("okitoki", link.okitoki_id)) if ident]
    ids += [f"session:{sid}" for (sid,) in conn.execute(
        select(CALL.c.session_id).where(CALL.c.link_id == link.id).limit(MAX_EVENTS))]
    wrapped = literal(",", String) + API.c.records + literal(",", String)
    cond = or_(*(wrapped.contains(f",{i},", autoescape=True) for i in ids))
    since = [API.c.at >= link.created_at - timedelta(minutes=5)] if link.created_at else []
    rows = conn.execute(select(API).where(and_(API.c.records.is_not(None), cond, *since))
                        .order_by(API.c.at.desc(), API.c.id.desc()).limit(MAX_EVENTS))
    return [{"at": _iso(r.at), "kind": "api", "operation": r.operation, "system": r.system,
             "method": r.method, "status": r.status, "attempt": r.attempt,
             "duration_ms": r.duration_ms, "error": r.error} for r in reversed(rows.all())]


def _payload_summary(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        return {}
    keep = ("values", "dialer_id", "phones", "generation", "status", "session_id", "list_id", "rule")
    return {k: payload[k] for k in keep if k in payload}


def trace(store: Store, config: Config, who: str) -> dict[str, Any]:
    """The story of every contact ``who`` names (several when a number is shared)."""
    ids, looked_up = find_links(store, config, who)
    stories = []
    fields = list(config.contacts.fields)
    with store.begin() as conn:
        for lid in ids:
            link = conn.execute(select(LINK).where(LINK.c.id == lid)).one()   # find_links found it
            base = conn.execute(select(BASE).where(BASE.c.link_id == lid)).first()
            crm = (base.crm if base is not None else None) or {}
            oki = (base.okitoki if base is not None else None) or {}
            agreed = (base.agreed if base is not None else None) or {}
            names = [*fields, PHONES] + ([DNC] if config.do_not_call.crm_field else [])
            values = {n: {"crm": crm.get(n), "okitoki": oki.get(n), "agreed": agreed.get(n)} for n in names}
            tasks = [{"dialer_id": t.dialer_id, "rule": t.rule, "state": t.state, "task_id": t.task_id,
                      "generation": t.generation, "phones": t.phones, "updated_at": _iso(t.updated_at)}
                     for t in conn.execute(select(TASK).where(TASK.c.link_id == lid))]
            stories.append({
                "link": {"id": link.id, "crm_id": link.crm_id, "okitoki_id": link.okitoki_id,
                         "retired": bool(link.tombstone), "hold": link.hold, "created_at": _iso(link.created_at),
                         "crm_deleted": bool(crm.get("__deleted")), "okitoki_deleted": bool(oki.get("__deleted")),
                         "crm_updated_at": _iso(base.crm_updated_at) if base is not None else None,
                         "okitoki_updated_at": _iso(base.okitoki_updated_at) if base is not None else None},
                "fields": values, "dialer_rules": _rules(config, agreed, link), "tasks": tasks,
                "events": _events(conn, link)})
        candidates = []
        side, _, ident = who.partition(":")
        if side in ("crm", "okitoki") and ident:
            candidates = [{"side": r.side, "record_id": r.record_id, "phone": r.phone, "candidates": r.candidates,
                           "at": _iso(r.at)} for r in conn.execute(select(CANDIDATE).where(and_(
                               CANDIDATE.c.side == side, CANDIDATE.c.record_id == ident)))]
    return {"looked_up": looked_up, "contacts": stories, "merge_candidates": candidates,
            "note": "API requests are listed by the records they were for; a bulk request names its "
                    "first 50 records only (`syncd journal` shows every request)"}


def render_trace(report: dict[str, Any]) -> str:
    """The story as lines for a terminal."""
    lines = [f"{report['looked_up']}: {len(report['contacts'])} contact(s)"]
    for story in report["contacts"]:
        link = story["link"]
        state = ", ".join(s for s, on in (("retired", link["retired"]), (f"held ({link['hold']})", link["hold"]),
                                           ("deleted in the CRM", link["crm_deleted"]),
                                           ("deleted in Oki-Toki", link["okitoki_deleted"])) if on)
        lines += ["", f"link {link['id']}: crm {link['crm_id'] or '-'} ⇄ okitoki {link['okitoki_id'] or '-'}"
                  + (f" [{state}]" if state else ""), "  field            crm | okitoki | agreed"]
        for name, v in story["fields"].items():
            lines.append(f"  {name:<16} {v['crm']!r} | {v['okitoki']!r} | {v['agreed']!r}")
        lines.append("  dialer rules:")
        for r in story["dialer_rules"]:
            lines.append(f"    {'✓' if r['matches'] else '✗'} {r['rule']} (dialer {r['dialer_id']}): {r['why']}")
        lines.append("  tasks:" if story["tasks"] else "  tasks: none")
        for t in story["tasks"]:
            lines.append(f"    dialer {t['dialer_id']}: {t['state']}, task {t['task_id'] or '-'}, "
                         f"generation {t['generation']}, phones {', '.join(t['phones'] or [])}")
        lines.append("  story:" if story["events"] else "  story: nothing queued or logged yet")
        for e in story["events"]:
            what = e.get("operation") or e.get("session_id") or e.get("field")
            extra = {k: v for k, v in e.items() if k not in ("at", "kind", "operation", "status") and v not in (None, {}, "")}
            lines.append(f"    {e['at'] or '-':<32} {e['kind']:<11} {what} [{e.get('status')}] "
                         + " ".join(f"{k}={v}" for k, v in extra.items()))
    for c in report["merge_candidates"]:
        lines.append(f"merge candidate: {c['side']} {c['record_id']} ({c['phone']}) matches {c['candidates']}")
    lines += ["", report["note"]]
    return "\n".join(lines)
