"""``[crm.options]`` of the SQL connector."""

from __future__ import annotations

from typing import Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, field_validator

from syncd.redact import register_secret

__all__ = ["SqlOptions"]


class SqlOptions(BaseModel):
    """Where the CRM's tables are. Every name is checked against the database at start."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="SQLAlchemy URL, e.g. postgresql+psycopg://user:pw@host/db")
    contacts_table: str = "contacts"
    id_column: str = "id"
    updated_at_column: str = "updated_at"
    # How updated_at holds a time: a date-time (SQLite: text in any spelling it reads), or a
    # number of seconds / milliseconds since 1970-01-01 UTC (integer or fractional).
    updated_at_format: Literal["datetime", "unix_seconds", "unix_milliseconds"] = "datetime"
    phone_columns: list[str] = Field(default_factory=lambda: ["phone"], min_length=1)
    # Soft deletes: a boolean/integer column (true = deleted) or a date-time one (set = deleted).
    # The change walk then returns deleted rows as deleted (whoever sets it must touch
    # updated_at); on_delete = "propagate" sets it instead of deleting the row.
    deleted_column: str | None = None
    calls_table: str | None = "calls"       # None: calls are not written to this database
    create_calls_table: bool = False        # create `calls_table` when missing (never alters contacts)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        try:
            url = sa.engine.make_url(value)
        except (sa.exc.ArgumentError, ValueError):
            # Never echo the value: it may hold a password.
            raise ValueError("is not a SQLAlchemy database URL "
                             "(e.g. sqlite:///crm.db or postgresql+psycopg://user@host/db)") from None
        register_secret(url.password if isinstance(url.password, str) else None)
        return value

    @field_validator("phone_columns")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("names a column twice")
        return value

    def engine_url(self) -> sa.engine.URL:
        return sa.engine.make_url(self.url)
