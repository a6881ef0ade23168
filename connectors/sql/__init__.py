"""The SQL connector: a CRM whose contacts live in a table of any SQLAlchemy database.

Entry point ``sql`` → :class:`SqlConnector`; options :class:`SqlOptions`. See
``docs/connectors/sql.md``.
"""

from .connector import SqlConnector
from .options import SqlOptions
from .schema import CALL_COLUMNS, calls_table_definition

__all__ = ["SqlConnector", "SqlOptions", "CALL_COLUMNS", "calls_table_definition"]
