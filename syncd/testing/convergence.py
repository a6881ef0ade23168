"""Checking, from the outside, that both sides agree and the invariants hold.

Used by ``syncd demo`` and by the system tests (crash, chaos): it reads the SQL CRM, the
sandbox's full state and the state database directly, and lists every problem it finds in
plain words. An empty list means: every linkable contact is linked once, mapped fields agree,
each matching contact has exactly one open task per dialer and no other, each call with a
known number is in the CRM exactly once, and do-not-call contacts are blacklisted and
not dialled. ("One task" is an open task, or one a dialer already finished with a call.)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ..phones import normalize_or_none
from ..store import CallRow, Conflict, Link, Outbox, TaskRow, open_store
from .scenario import SqlCrm

__all__ = ["Verdict", "check_convergence", "linked_pairs", "e164"]


def e164(raw: str | None, region: str = "UA") -> str | None:
    """A number as E.164, or None if it is not a valid number (the daemon's own rules)."""
    return normalize_or_none(raw, region)


@dataclass
class Verdict:
    problems: list[str] = field(default_factory=list)
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def linked_pairs(store: Any) -> dict[str, str]:
    """crm id → okitoki id of every live contact link."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(Link.__table__.c.crm_id, Link.__table__.c.okitoki_id)
                            .where(Link.__table__.c.tombstone == sa.false())).all()
    return {r.crm_id: r.okitoki_id for r in rows if r.crm_id and r.okitoki_id}


def _norm(value: Any) -> Any:
    return None if value in ("", None) else value


def check_convergence(state_url: str, crm: SqlCrm, okitoki_state: dict[str, Any], *,
                      dialers: dict[int, list[str]], blacklist_id: int,
                      fields: dict[str, str] | None = None, region: str = "UA",
                      max_problems: int = 30) -> Verdict:
    """Compare the CRM, Oki-Toki (sandbox state) and the state database.

    ``dialers`` maps dialer id → CRM statuses that put a contact into it; ``fields`` maps CRM
    column → Oki-Toki field (``details.x`` allowed) that must agree on linked contacts.
    """
    fields = fields or {"name": "name", "email": "email", "status": "details.status"}
    verdict = Verdict()
    problems = verdict.problems
    store = open_store(state_url)
    try:
        pairs = linked_pairs(store)
        with store.engine.connect() as conn:
            held = {r.crm_id for r in conn.execute(sa.select(Link.__table__.c.crm_id)
                                                   .where(Link.__table__.c.hold.is_not(None)))}
            dead = conn.execute(sa.select(sa.func.count()).select_from(Outbox.__table__)
                                .where(Outbox.__table__.c.status == "dead")).scalar_one()
            conflicts = conn.execute(sa.select(sa.func.count()).select_from(Conflict.__table__)).scalar_one()
            tasks_rows = conn.execute(sa.select(TaskRow.__table__.c.state,
                                                TaskRow.__table__.c.generation)).all()
            calls_logged = conn.execute(sa.select(sa.func.count()).select_from(CallRow.__table__)
                                        .where(CallRow.__table__.c.state == "logged")).scalar_one()
    finally:
        store.engine.dispose()

    crm_rows = crm.all()
    ok_contacts = {str(c["id"]): c for c in okitoki_state["contacts"]}
    crm_by_id = {str(r["id"]): r for r in crm_rows}
    phones_of = {cid: [p for p in (e164(r["phone"], region), e164(r["phone2"], region)) if p]
                 for cid, r in crm_by_id.items()}
    owners = Counter(p for ps in phones_of.values() for p in set(ps))

    # 1. every linkable contact linked exactly once (shared numbers are merge candidates)
    for cid, phones in phones_of.items():
        if not phones or cid in held or any(owners[p] > 1 for p in phones):
            continue
        if cid not in pairs:
            problems.append(f"CRM contact {cid} ({phones[0]}) is not linked")
        elif pairs[cid] not in ok_contacts:
            problems.append(f"CRM contact {cid} links to Oki-Toki contact {pairs[cid]}, which does not exist")
    ok_owner = Counter(e164(p, region) for c in ok_contacts.values() for p in set(c["phones"]))
    for p, n in ok_owner.items():
        if p and n > 1 and owners.get(p, 0) <= 1:
            problems.append(f"{n} Oki-Toki contacts hold {p}: a contact was created twice")

    # 2. mapped fields agree
    for cid, oid in pairs.items():
        row, oc = crm_by_id.get(cid), ok_contacts.get(oid)
        if row is None or oc is None:
            continue
        for col, okf in fields.items():
            theirs = (oc.get("details") or {}).get(okf[8:]) if okf.startswith("details.") else oc.get(okf)
            if _norm(row[col]) != _norm(theirs):
                problems.append(f"contact {cid}/{oid}: {col} is {row[col]!r} in the CRM "
                                f"but {theirs!r} in Oki-Toki")

    # 3. dialer tasks: exactly one open task per matching dialer, none elsewhere
    # A task a dialer finished (a call was made on it) still counts as the contact's one task
    # in that dialer: calling again is the dialer's own retry policy, not a new task.
    open_tasks: Counter[tuple[int, str]] = Counter()
    dialled: set[tuple[int, str]] = set()
    for t in okitoki_state["tasks"]:
        for p in t["phones"]:
            key = (t["dialer_id"], e164(p, region) or p)
            if t["status"] == "pending":
                open_tasks[key] += 1
            elif t["status"] == "done":
                dialled.add(key)
    blacklisted = {e164(v, region) or v for lst in okitoki_state["lists"] if lst["id"] == blacklist_id
                   for v in lst["values"]}
    for cid, oid in pairs.items():
        row = crm_by_id.get(cid)
        if row is None or not phones_of.get(cid):
            continue
        first = phones_of[cid][0]
        for dialer_id, statuses in dialers.items():
            want = 0 if row["do_not_call"] else int(row["status"] in statuses)
            have = open_tasks.get((dialer_id, first), 0)
            if want == 1 and have == 0 and (dialer_id, first) in dialled:
                continue
            if have != want:
                problems.append(f"contact {cid} (status {row['status']!r}, dnc={bool(row['do_not_call'])}) "
                                f"has {have} open tasks in dialer {dialer_id}, expected {want}")
        if row["do_not_call"]:
            for p in phones_of[cid]:
                if p not in blacklisted:
                    problems.append(f"contact {cid} is do-not-call but {p} is not on list {blacklist_id}")

    # 4. calls with a known number: in the CRM exactly once
    known = {p: cid for cid, ps in phones_of.items() for p in ps if cid in pairs}
    crm_calls = Counter(str(c["session_id"]) for c in crm.calls())
    for sid, n in crm_calls.items():
        if n > 1:
            problems.append(f"call {sid} is in the CRM {n} times")
    for call in okitoki_state["calls"]:
        phone = call["ani"] if call["call_type"] == "I" else call["dnis"]
        if e164(phone, region) in known and crm_calls.get(str(call["session_id"]), 0) != 1:
            problems.append(f"call {call['session_id']} to {phone} is not in the CRM")

    del problems[max_problems:]
    verdict.stats = {
        "contacts_linked": len(pairs),
        "tasks_created": sum(g for _, g in tasks_rows),
        "tasks_removed": sum(1 for s, _ in tasks_rows if s == "removed"),
        "calls_logged": int(calls_logged),
        "dnc_listed": len(blacklisted),
        "conflicts": int(conflicts),
        "dead_letters": int(dead),
    }
    return verdict
