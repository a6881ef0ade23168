"""Database errors → the taxonomy of :mod:`syncd.errors`.

Only the driver's own message (first line, redacted) is kept: SQLAlchemy's rendering adds the
statement and its parameters, which hold personal data and say nothing to an operator.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

import sqlalchemy as sa

from syncd.errors import (AuthenticationError, NotFound, PermissionDenied, RemoteError,
                          Throttled, TransientError)
from syncd.redact import redact

__all__ = ["translated", "remote_error", "driver_message", "is_batch_fatal"]

SYSTEM = "crm"

# PostgreSQL SQLSTATE → taxonomy.
_PG = {
    "28P01": AuthenticationError, "28000": AuthenticationError,
    "42501": PermissionDenied,
    "53300": Throttled, "53400": Throttled,     # too many connections, configuration limit
    "3D000": NotFound,                          # the database does not exist
}
# MySQL/MariaDB error numbers → taxonomy.
_MYSQL = {
    1045: AuthenticationError, 1698: AuthenticationError,
    1044: PermissionDenied, 1142: PermissionDenied, 1143: PermissionDenied, 1227: PermissionDenied,
    1040: Throttled, 1203: Throttled, 1226: Throttled,   # connections / user resource limits
    1049: NotFound,                                      # unknown database
}
# Messages of refused logins when the driver gives no code (psycopg at connect time).
_AUTH_SIGNS = ("password authentication failed", "access denied for user",
               "no pg_hba.conf entry", "authentication failed")
_ROLE_MISSING = re.compile(r'role "[^"]*" does not exist')
_DB_MISSING = re.compile(r'database "[^"]*" does not exist')
_HINTS = {
    AuthenticationError: "the user or password in crm.options.url is wrong",
    PermissionDenied: "the database user in crm.options.url lacks a right on these tables",
    NotFound: "the database named in crm.options.url does not exist",
    Throttled: "the database refuses more connections for now",
}


def driver_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    args = getattr(orig, "args", ())
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):
        text = [f"{args[1]} (error {args[0]})"]  # pymysql: (errno, message)
    else:
        text = str(orig).strip().splitlines()
    return redact(" ".join(text[:2])[:300]) or type(orig).__name__


def _code(exc: sa.exc.DBAPIError) -> tuple[str | None, int | None]:
    orig = exc.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    errno = None
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        errno = args[0]
    return sqlstate, errno


def remote_error(exc: BaseException, operation: str) -> RemoteError:
    """The taxonomy error for a database failure of a whole operation."""
    message = driver_message(exc)
    kind: type[RemoteError] = TransientError
    if isinstance(exc, sa.exc.DBAPIError):
        sqlstate, errno = _code(exc)
        lowered = message.lower()
        if sqlstate in _PG:
            kind = _PG[sqlstate]
        elif errno in _MYSQL:
            kind = _MYSQL[errno]
        elif any(sign in lowered for sign in _AUTH_SIGNS) or _ROLE_MISSING.search(lowered):
            kind = AuthenticationError
        elif "too many connections" in lowered:
            kind = Throttled
        elif _DB_MISSING.search(lowered):
            kind = NotFound
        elif "readonly database" in lowered:
            kind = PermissionDenied
    hint = _HINTS.get(kind)
    return kind(message, system=SYSTEM, operation=f"sql {operation}", hint=hint)


def is_batch_fatal(exc: sa.exc.DBAPIError) -> bool:
    """Whether a failure inside one record's savepoint also broke the whole transaction
    (lost connection, deadlock, lock timeout, serialization failure)."""
    if exc.connection_invalidated:
        return True
    sqlstate, errno = _code(exc)
    if sqlstate and (sqlstate.startswith(("08", "40", "53", "57", "58")) or sqlstate == "55P03"):
        return True
    if errno in (1205, 1213, 2006, 2013) or (errno in _MYSQL):
        return True
    return "database is locked" in driver_message(exc).lower()


@contextlib.contextmanager
def translated(operation: str) -> Iterator[None]:
    """Re-raise database errors of ``operation`` as taxonomy errors (messages redacted)."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        raise remote_error(exc, operation) from None
    except sa.exc.SQLAlchemyError as exc:
        raise TransientError(driver_message(exc), system=SYSTEM,
                             operation=f"sql {operation}") from None
