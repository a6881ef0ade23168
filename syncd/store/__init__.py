"""The state database: tables, opening (SQLite/PostgreSQL), migrations, outbox SQL, accounting.

Public API::

    store = open_store(url, create=False)   # SchemaOutdated unless migrated
    migrate(url); check_schema(url)
    StoreBudget(store, {"okitoki": 20000}); StoreJournal(store)
"""

from .accounting import StoreBudget, StoreJournal, acquire_lease, record_run, release_lease
from .database import Store, open_store
from .engines import sqlite_path
from .schema import SchemaOutdated, check_schema, head_revision, migrate
from .tables import (ApiCall, Base, BudgetRow, CallRow, Conflict, CursorRow, Dirty, Lease, Link,
                     LinkPhone, MergeCandidate, Outbox, Run, StreamHealth, TaskRow, VerifyReport,
                     metadata)

__all__ = [
    "Store", "open_store", "sqlite_path", "migrate", "check_schema", "head_revision",
    "SchemaOutdated", "StoreBudget", "StoreJournal", "record_run", "acquire_lease",
    "release_lease", "metadata", "Link", "LinkPhone", "Base", "Dirty", "CursorRow", "Outbox",
    "Conflict", "CallRow", "TaskRow", "Run", "ApiCall", "BudgetRow", "Lease", "MergeCandidate",
    "StreamHealth", "VerifyReport",
]
