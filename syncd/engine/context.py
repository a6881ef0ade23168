"""What every flow needs: configuration, store, both sides, the clock, and small SQL helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Iterable, Protocol

from sqlalchemy import Connection, Table, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite

from ..batches import chunks
from ..clock import utcnow
from ..config import Config
from ..connector import CapableConnector, Capabilities, VendorLimits
from ..jsonable import jsonable
from ..model import Change
from ..store import Store, StoreBudget
from ..store.tables import Base, Dirty, Link, LinkPhone, Outbox
from .mapping import Mapping
from .outbox import Backoff
from .pace import Pace

if TYPE_CHECKING:
    from ..okitoki.client import OkitokiClient

__all__ = ["Context", "LINK", "BASE", "DIRTY", "PHONE", "OUTBOX", "mark_dirty", "jsonable",
           "chunks", "utcnow"]

LINK, BASE, DIRTY, PHONE, OUTBOX = (Link.__table__, Base.__table__, Dirty.__table__,
                                    LinkPhone.__table__, Outbox.__table__)


class StopSignal(Protocol):
    """A ``threading.Event`` as the push reads it (also a partition's own halt signal)."""

    def is_set(self) -> bool: ...


@dataclass
class Context:
    """The engine's view of the world: the state database and both sides."""

    config: Config
    store: Store
    crm: CapableConnector   # optional methods are called only with their capability
    okitoki: OkitokiClient
    clock: Callable[[], datetime] = utcnow
    instance_id: str = "syncd"
    budget: StoreBudget | None = None     # the persistent daily request budget (daemon)
    backoff: Backoff = Backoff()
    batch_size: int = 500
    dry_run: bool = False
    planned: list[Change] = field(default_factory=list)   # dry-run: what push would do
    stop: StopSignal | None = None        # set when the daemon stops the running push
    heartbeat: Callable[[str], None] | None = None   # (stream): a long job committed a batch
    latency_listener: Callable[[str, float], None] | None = None   # (flow, seconds): settled
    mapping: Mapping = field(init=False)
    paces: dict[str, Pace] = field(default_factory=dict)   # requests in flight, per system

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
        return self.config.crm.max_in_flight or VendorLimits.of(self.crm).max_in_flight

    def pace(self, system: str) -> Pace:
        """How many of ``system``'s requests run at once now (at most :meth:`in_flight`)."""
        pace = self.paces.get(system)
        if pace is None:
            pace = self.paces[system] = Pace(system)
        return pace

    @property
    def crm_capabilities(self) -> Capabilities:
        return self.crm.capabilities


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


def update_many(conn: Connection, table: Table, key: str, rows: list[dict[str, Any]]) -> None:
    """``UPDATE table SET ... WHERE key = :key`` for many rows with the same columns."""
    if not rows:
        return
    cols = [c for c in rows[0] if c != key]
    stmt = (update(table).where(table.c[key] == bindparam("_k"))
            .values({c: bindparam("_v_" + c) for c in cols}))
    conn.execute(stmt, [{"_k": r[key], **{"_v_" + c: r[c] for c in cols}} for r in rows])

