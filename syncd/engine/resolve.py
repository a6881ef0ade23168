"""``syncd conflicts resolve ID --take crm|okitoki|value V``: an operator settles a held
(``manual``) conflict, or overrides the value another rule picked.

The chosen value becomes the agreed value of the field, and every side that holds something
else gets a normal contact update through the outbox. A pending update counts as that side's
value in the merge, so nothing echoes back before the sides are read again.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import select, update

from ..store.outbox import enqueue
from ..store.tables import Conflict
from .context import BASE, LINK, Context, mark_dirty
from .mapping import Side, same
from .outbox import Lane

__all__ = ["resolve_conflict", "ConflictNotFound"]

CONFLICT = Conflict.__table__


class ConflictNotFound(LookupError):
    pass


def _chosen(take: str, value: str | None, row: Any, base: Any) -> Any:
    if take == "crm":
        return ((base.crm if base is not None else None) or {}).get(row.field, row.crm_value)
    if take == "okitoki":
        return ((base.okitoki if base is not None else None) or {}).get(row.field, row.okitoki_value)
    if value is None:
        raise ValueError("--take value needs the value")
    try:   # a JSON literal (number, true, null, "text"); anything else is the text itself
        return json.loads(value)
    except ValueError:
        return value


def resolve_conflict(ctx: Context, conflict_id: int, take: str, value: str | None = None) -> dict[str, Any]:
    """Settle conflict ``conflict_id``; returns what was decided and which sides get a write.
    ConflictNotFound for an unknown id; ValueError for a choice that cannot be applied."""
    if take not in ("crm", "okitoki", "value"):
        raise ValueError(f'--take must be crm, okitoki or value, not "{take}"')
    now = ctx.now()
    with ctx.store.begin() as conn:
        row = conn.execute(select(CONFLICT).where(CONFLICT.c.id == conflict_id)).first()
        if row is None:
            raise ConflictNotFound(f"no conflict with id {conflict_id}")
        spec = ctx.mapping.specs.get(row.field)
        if spec is None:
            raise ValueError(f'field "{row.field}" is no longer in [contacts.fields]')
        link = conn.execute(select(LINK).where(LINK.c.id == row.link_id)).first()
        base = conn.execute(select(BASE).where(BASE.c.link_id == row.link_id)).first()
        chosen = _chosen(take, value, row, base)
        sides: dict[Side, dict[str, Any]] = {"crm": (base.crm if base is not None else None) or {},
                 "okitoki": (base.okitoki if base is not None else None) or {}}
        writes = []
        for side, seen in sides.items():
            present = link is not None and (link.crm_id if side == "crm" else link.okitoki_id)
            if present and spec.flows_to(side) and not same(row.field, seen.get(row.field), chosen):
                writes.append(side)
        enqueue(conn, [{"lane": int(Lane.CONTACTS), "target": side, "operation": "contact_update",
                        "link_id": row.link_id, "payload": {"values": {row.field: chosen}},
                        "idem_key": f"contact:{side}:{row.link_id}:resolve:{conflict_id}:{uuid.uuid4().hex}"}
                       for side in writes], now=now)
        if base is not None:
            agreed = dict(base.agreed or {})
            agreed[row.field] = chosen
            conn.execute(update(BASE).where(BASE.c.link_id == row.link_id).values(agreed=agreed))
        conn.execute(update(CONFLICT).where(CONFLICT.c.link_id == row.link_id, CONFLICT.c.field == row.field,
                                            CONFLICT.c.resolved.is_(False))
                     .values(resolved=True))
        conn.execute(update(CONFLICT).where(CONFLICT.c.id == conflict_id)
                     .values(resolved=True, winner=take if take != "value" else "operator"))
        mark_dirty(conn, [row.link_id])
    return {"conflict": conflict_id, "link_id": row.link_id, "field": row.field, "value": chosen,
            "writes": writes}
