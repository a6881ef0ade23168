"""Schema versions: applying the alembic migrations and refusing an outdated database."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Engine, create_engine, inspect, text

from ..errors import ConfigError
from ..redact import redact
from .engines import prepare_sqlite_file, sqlite_engine, sqlite_path

if TYPE_CHECKING:   # alembic (about 10 MB with mako) is imported only to migrate: a running
    from alembic.config import Config as AlembicConfig   # daemon checks its schema without it

__all__ = ["SchemaOutdated", "migrate", "check_schema", "head_revision", "current_revision"]

MIGRATIONS = Path(__file__).with_name("migrations")


class SchemaOutdated(ConfigError):
    """The state database is not at the schema this version needs (exit 78: a person acts)."""


def _alembic_config(url: str) -> "AlembicConfig":
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig(str(MIGRATIONS / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest migration's revision id, read from the migration files' ``revision`` and
    ``down_revision`` assignments (what alembic's script directory reads, without importing
    alembic; ``tests/store`` checks the two agree). Several heads (a branch of the migrations)
    are a packaging bug, refused as alembic would."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        found = _revision_of(path)
        if found is None:
            continue
        revision, down = found
        revisions.add(revision)
        parents.update(down)
    heads = sorted(revisions - parents)
    if len(heads) > 1:
        raise RuntimeError(f"the migrations have several heads ({', '.join(heads)}): "
                           f"this installation of syncd is broken")
    return heads[0] if heads else ""


def _revision_of(path: Path) -> tuple[str, tuple[str, ...]] | None:
    """(revision, down revisions) of one migration file, or None if it declares none."""
    values: dict[str, object] = {}
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        target, value = None, None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign):
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and target.id in ("revision", "down_revision") and value is not None:
            values[target.id] = ast.literal_eval(value)
    revision, down = values.get("revision"), values.get("down_revision")
    if not isinstance(revision, str):
        return None
    downs = (down,) if isinstance(down, str) else tuple(d for d in down or () if isinstance(d, str)) \
        if isinstance(down, (tuple, list)) else ()
    return revision, downs


def current_revision(engine: Engine) -> str | None:
    """The revision alembic recorded in the database (its ``alembic_version`` table), or None
    for a database without one."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        rows = [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]
    if len(rows) > 1:
        raise SchemaOutdated(f"daemon.state_url: the state database is at several revisions "
                             f"({', '.join(sorted(rows))}): run `syncd migrate`")
    return rows[0] if rows else None


def migrate(url: str, *, engine: Engine | None = None) -> str:
    """Bring the database at ``url`` to the newest schema; idempotent. Returns the revision."""
    from sqlalchemy.exc import ArgumentError, InterfaceError, OperationalError

    own = engine is None
    try:
        if engine is None:
            path = sqlite_path(url)
            if path is not None:
                prepare_sqlite_file(path)
                engine = sqlite_engine(url)
            else:   # an unreachable server answers within seconds, not the TCP timeout
                engine = create_engine(url, connect_args={"connect_timeout": 10})
        from alembic import command

        cfg = _alembic_config(url)
        try:
            with engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
            return current_revision(engine) or ""
        finally:
            if own:
                engine.dispose()
    except (OSError, OperationalError, InterfaceError, ArgumentError) as exc:
        # A folder, a read-only place, an unreachable server: the URL is what a person fixes.
        from ..config_online import database_error_line

        if isinstance(exc, OSError) and exc.strerror:
            why = f'{exc.strerror}: "{exc.filename}"' if exc.filename else exc.strerror
        else:
            why = database_error_line(exc)
        raise ConfigError(f"daemon.state_url: cannot create or open the state database: "
                          f"{why}") from None


def check_schema(url: str, *, engine: Engine | None = None) -> None:
    """Raise :class:`SchemaOutdated` unless the database is at the newest migration."""
    own = engine is None
    engine = engine or create_engine(url)
    try:
        try:
            current = current_revision(engine)
        except Exception as exc:  # unreachable server, bad credentials, ...
            raise SchemaOutdated(f"daemon.state_url: cannot open the state database ({redact(str(exc))[:200]})") from None
    finally:
        if own:
            engine.dispose()
    head = head_revision()
    if current != head:
        at = f"revision {current}" if current else "no schema"
        raise SchemaOutdated(
            f"daemon.state_url: the state database has {at}, this syncd needs {head}: "
            "run `syncd migrate`")
