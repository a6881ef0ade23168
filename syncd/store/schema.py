"""Schema versions: applying the alembic migrations and refusing an outdated database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine

from ..errors import ConfigError
from ..redact import redact
from .engines import prepare_sqlite_file, sqlite_engine, sqlite_path

__all__ = ["SchemaOutdated", "migrate", "check_schema", "head_revision", "current_revision"]

MIGRATIONS = Path(__file__).with_name("migrations")


class SchemaOutdated(ConfigError):
    """The state database is not at the schema this version needs (exit 78: a person acts)."""


def _alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig(str(MIGRATIONS / "alembic.ini"))
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(_alembic_config("sqlite://")).get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


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
