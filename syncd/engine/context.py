"""What every flow needs: configuration, store, both sides, the clock, and small SQL helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable, Iterable

from sqlalchemy import Connection, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite

from ..batches import chunks
from ..clock import utcnow
from ..config import Config
from ..jsonable import jsonable
from ..model import Change
from ..store import Store
from ..store.tables import Base, Dirty, Link, LinkPhone, Outbox
from .mapping import Mapping
from .outbox import Backoff

__all__ = ["Context", "LINK", "BASE", "DIRTY", "PHONE", "OUTBOX", "mark_dirty", "jsonable",
           "chunks", "utcnow"]

LINK, BASE, DIRTY, PHONE, OUTBOX = (Link.__table__, Base.__table__, Dirty.__table__,
                                    LinkPhone.__table__, Outbox.__table__)


@dataclass
class Context:
    """The engine's view of the world. ``okitoki`` is an OkitokiClient, ``crm`` a connector."""

    config: Config
    store: Store
    crm: Any
    okitoki: Any
    clock: Callable[[], datetime] = utcnow
    instance_id: str = "syncd"
    budget: Any = None                    # syncd.http.RequestBudget (persistent in the daemon)
    backoff: Backoff = Backoff()
    batch_size: int = 500
    dry_run: bool = False
    planned: list[Change] = field(default_factory=list)   # dry-run: what push would do
    stop: Any = None                      # threading.Event of the running push (shutdown)
    heartbeat: Any = None                 # callable(stream): a long job committed a batch (health)
    latency_listener: Any = None          # callable(flow, seconds): a change's effect settled
    mapping: Mapping = field(init=False)

    def __post_init__(self) -> None:
        self.mapping = Mapping(self.config)

    def now(self) -> datetime:
        return self.clock()

    def stopping(self) -> bool:
        """Whether the daemon asked the running push to stop (rows not started are released)."""
        return self.stop is not None and self.stop.is_set()

    def in_flight(self, system: str) -> int:
        """How many requests to ``system`` the push may have in flight at once: the configured
        ``max_in_flight``, else the connector's ``default_max_in_flight`` (4 when it names none)."""
        if system == "okitoki":
            return self.config.okitoki.max_in_flight
        return self.config.crm.max_in_flight or getattr(self.crm, "default_max_in_flight", None) or 4

    @property
    def crm_capabilities(self) -> Any:
        return getattr(self.crm, "capabilities", None)


def mark_dirty(conn: Connection, link_ids: Iterable[int]) -> None:
    """Queue links for the merge; bumping ``seq`` tells a running merge it saw an older state."""
    rows = [{"link_id": i, "seq": 1} for i in sorted(set(link_ids))]
    if not rows:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(DIRTY)
    stmt = stmt.on_conflict_do_update(index_elements=["link_id"],
                                      set_={"seq": DIRTY.c.seq + 1})
    conn.execute(stmt, rows)


def update_many(conn: Connection, table: Any, key: str, rows: list[dict]) -> None:
    """``UPDATE table SET ... WHERE key = :key`` for many rows with the same columns."""
    if not rows:
        return
    cols = [c for c in rows[0] if c != key]
    stmt = (update(table).where(table.c[key] == bindparam("_k"))
            .values({c: bindparam("_v_" + c) for c in cols}))
    conn.execute(stmt, [{"_k": r[key], **{"_v_" + c: r[c] for c in cols}} for r in rows])

