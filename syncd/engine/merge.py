"""Field-level three-way merge of one contact: base (last agreed) vs CRM vs Oki-Toki.

A *change* is a side's value that differs from the base, so a value we wrote and read back is
never a change (no echo). A field changed on both sides to different values is a *conflict*,
decided by the field's policy:

* ``crm`` / ``okitoki``: that side wins;
* ``newest``: the side whose record has the later server ``updated_at`` wins (ties: CRM);
* ``forward``: the value further along ``status_order`` wins (unknown values rank lowest; ties: CRM);
* ``manual``: the field is held (nothing written), both values kept in the journal;
* the do-not-call field: "yes" always wins.

On top of every policy an empty value never erases a non-empty one, and a side that emptied a
field is not refilled either (the field simply stops being synced until someone fills it).
The merge is a pure function; the caller stores the outcome and journals the conflicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Iterable

from .mapping import DNC, FieldSpec, is_empty, same

__all__ = ["FieldConflict", "MergeOutcome", "merge_fields", "pick_winner"]


@dataclass(frozen=True)
class FieldConflict:
    field: str
    base: Any
    crm: Any
    okitoki: Any
    rule: str
    winner: str          # crm | okitoki | held
    journal: bool = True  # False for the first merge of two records (no base to conflict with)


@dataclass
class MergeOutcome:
    agreed: dict[str, Any]
    to_crm: dict[str, Any] = field(default_factory=dict)
    to_okitoki: dict[str, Any] = field(default_factory=dict)
    conflicts: list[FieldConflict] = field(default_factory=list)


def _rank(value: Any, order: list[str]) -> int:
    try:
        return order.index(value)
    except ValueError:
        return -1


def pick_winner(spec: FieldSpec, crm: Any, okitoki: Any, *, crm_ts: datetime | None,
                okitoki_ts: datetime | None, status_order: list[str]) -> tuple[str, str]:
    """(winner side or "held", rule name) for a field both sides changed differently."""
    if spec.name == DNC:
        return ("crm" if bool(crm) else "okitoki"), "do_not_call"
    rule = spec.conflict
    if rule in ("crm", "okitoki"):
        return rule, rule
    if rule == "manual":
        return "held", rule
    if rule == "forward":
        rc, ro = _rank(crm, status_order), _rank(okitoki, status_order)
        return ("okitoki" if ro > rc else "crm"), rule
    # newest: a missing timestamp counts as oldest; equal timestamps → CRM, deterministically
    if okitoki_ts is not None and (crm_ts is None or okitoki_ts > crm_ts):
        return "okitoki", rule
    return "crm", rule


def merge_fields(specs: Iterable[FieldSpec], base: dict[str, Any] | None,
                 crm: dict[str, Any], okitoki: dict[str, Any], *,
                 crm_ts: datetime | None = None, okitoki_ts: datetime | None = None,
                 status_order: list[str] | None = None) -> MergeOutcome:
    """Merge one linked contact seen on both sides.

    ``base`` None means the two records were just linked (first merge). ``crm``/``okitoki``
    hold the canonical values last seen on each side; a field pending a write to a side
    should be passed with the value being written (so it is not mistaken for a change).
    Returns the new agreed values and the fields to write to each side.
    """
    order = status_order or []
    out = MergeOutcome(agreed={})
    for spec in specs:
        f = spec.name
        c, o = crm.get(f), okitoki.get(f)
        has_c = spec.crm is not None or f == "phones"
        has_o = spec.okitoki is not None or f == "phones"
        initial = base is None or f not in base
        b = None if initial else base.get(f)  # type: ignore[union-attr]
        if not has_c or not has_o:
            out.agreed[f] = c if has_c else o
            continue
        ch_c = not same(f, c, b)
        ch_o = not same(f, o, b)
        if spec.sync != "both":
            src, dst = ("crm", "okitoki") if spec.sync == "to_okitoki" else ("okitoki", "crm")
            sv, dv = (c, o) if src == "crm" else (o, c)
            out.agreed[f] = sv if not is_empty(sv) else dv
            if (ch_c or ch_o) and not is_empty(sv) and not same(f, dv, sv):
                (out.to_okitoki if dst == "okitoki" else out.to_crm)[f] = sv
            continue
        if ch_c and ch_o and not same(f, c, o):
            winner, rule = pick_winner(spec, c, o, crm_ts=crm_ts, okitoki_ts=okitoki_ts,
                                       status_order=order)
            out.conflicts.append(FieldConflict(f, b, c, o, rule, winner,
                                               journal=not initial or winner == "held"))
            if winner == "held":
                out.agreed[f] = b
                continue
            w = c if winner == "crm" else o
        elif ch_c:
            w = c
        elif ch_o:
            w = o
        else:
            w = b if not initial else (c if not is_empty(c) else o)
        if is_empty(w):
            w = next((v for v in (o, c) if not is_empty(v)), w) if ch_c else \
                next((v for v in (c, o) if not is_empty(v)), w)
        out.agreed[f] = w
        if not same(f, c, w) and not (is_empty(c) and ch_c) and not is_empty(w):
            out.to_crm[f] = w
        if not same(f, o, w) and not (is_empty(o) and ch_o) and not is_empty(w):
            out.to_okitoki[f] = w
    return out
