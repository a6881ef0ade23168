"""A small CRM living in a SQL database, for the demo, system tests and benchmarks.

``SqlCrm`` creates the contacts table the way a company's CRM might have it (two phone
columns, a status, a do-not-call flag, ``updated_at`` maintained by every write) and lets a
test or the demo edit records "behind the daemon's back" exactly as a CRM user would.
Times are stored as naive UTC with microseconds (what most CRMs keep).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Iterable

import sqlalchemy as sa

from ..demo_data import DemoContact

__all__ = ["SqlCrm", "CRM_FIELDS"]

# canonical field → CRM column (the [contacts.fields] of scenario configs)
CRM_FIELDS = {"name": "name", "email": "email", "status": "status"}


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass
class SqlCrm:
    """A contacts table (and the calls table syncd may create) in the database at ``url``."""

    url: str
    contacts_table: str = "contacts"

    def __post_init__(self) -> None:
        self.engine = sa.create_engine(self.url, future=True)
        self.meta = sa.MetaData()
        self.contacts = sa.Table(
            self.contacts_table, self.meta,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("name", sa.String(200), nullable=False),
            sa.Column("phone", sa.String(64)),
            sa.Column("phone2", sa.String(64)),
            sa.Column("email", sa.String(200)),
            sa.Column("status", sa.String(32), nullable=False, server_default="new"),
            sa.Column("do_not_call", sa.Boolean, nullable=False, server_default=sa.false()),
            sa.Column("updated_at", sa.DateTime, nullable=False, index=True),
        )

    def create(self) -> "SqlCrm":
        self.meta.create_all(self.engine)
        return self

    def insert(self, people: Iterable[DemoContact], *, chunk: int = 5000) -> int:
        """Insert contacts in chunks; returns how many."""
        total, rows = 0, []
        with self.engine.begin() as conn:
            for p in people:
                rows.append(dict(name=p.name, phone=p.phone, phone2=p.phone2, email=p.email,
                                 status=p.status, do_not_call=False, updated_at=_now()))
                if len(rows) >= chunk:
                    conn.execute(self.contacts.insert(), rows)
                    total, rows = total + len(rows), []
            if rows:
                conn.execute(self.contacts.insert(), rows)
                total += len(rows)
        return total

    def update(self, contact_id: int, **values: Any) -> None:
        """Edit one contact as a CRM user would (``updated_at`` moves to now)."""
        with self.engine.begin() as conn:
            conn.execute(self.contacts.update().where(self.contacts.c.id == contact_id)
                         .values(**values, updated_at=_now()))

    def get(self, contact_id: int) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(self.contacts).where(self.contacts.c.id == contact_id)).first()
        return dict(row._mapping) if row else None

    def all(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(self.contacts).order_by(self.contacts.c.id))]

    def calls(self) -> list[dict[str, Any]]:
        """Rows of the calls table syncd writes (empty when it does not exist yet)."""
        insp = sa.inspect(self.engine)
        if not insp.has_table("calls"):
            return []
        calls = sa.Table("calls", sa.MetaData(), autoload_with=self.engine)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(calls))]

    def dispose(self) -> None:
        self.engine.dispose()


def to_toml(data: dict[str, Any]) -> str:
    """Write a configuration dict (tables, arrays of tables, scalars, lists, inline dicts) as TOML.

    Enough for syncd's own configuration files; not a general TOML writer.
    """
    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{_key(k)} = {scalar(x)}" for k, x in v.items()) + " }"
        raise TypeError(f"cannot write {type(v).__name__} as TOML")

    def table(prefix: str, body: dict[str, Any], out: list[str], header: str) -> None:
        plain = {k: v for k, v in body.items() if not isinstance(v, dict) or _inline(k, prefix)}
        nested = {k: v for k, v in body.items() if k not in plain}
        if header:
            out.append(header)
        out.extend(f"{_key(k)} = {scalar(v)}" for k, v in plain.items())
        out.append("")
        for k, v in nested.items():
            name = f"{prefix}.{_key(k)}" if prefix else _key(k)
            table(name, v, out, f"[{name}]")

    out: list[str] = []
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                table(key, item, out, f"[[{key}]]")
        elif isinstance(value, dict):
            table(key, value, out, f"[{key}]")
        else:
            out.insert(0, f"{_key(key)} = {scalar(value)}")
    return "\n".join(out)


def _inline(key: str, prefix: str) -> bool:
    # [contacts.fields] entries and [[dialer]].when read best as inline tables
    return prefix.endswith("fields") or key == "when"


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else '"' + k + '"'
