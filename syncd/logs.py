"""structlog set-up: JSON lines for journald, a readable console format on a terminal.

Every line carries ``event``, ``level``, ``timestamp`` (UTC, ISO 8601) and the context bound
with ``structlog.contextvars.bind_contextvars`` (``run_id``, ``job``, ``stream``, ids,
counts). A redaction processor masks every registered secret (and secret-shaped values) in
every field, including rendered exceptions. Standard-library logging (httpx, apscheduler,
uvicorn) goes through the same processors and renderer, at warning level and above.

Usage::

    configure_logging("auto", "info")
    log = structlog.get_logger()
    log.info("job_finished", job="push", counts={"created": 3})
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from .redact import redact_value

__all__ = ["configure_logging", "redact_processor", "LEVELS", "shared_processors"]

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}
# Loggers of libraries we use; their chatter stays below warning.
_LIBRARY_LOGGERS = ("httpx", "httpcore", "apscheduler", "uvicorn", "uvicorn.error",
                    "uvicorn.access", "alembic", "sqlalchemy")
_HANDLER_NAME = "syncd"


class _RoutineSchedulerNoise(logging.Filter):
    """Drop APScheduler's warnings about skipped or coalesced runs: with ``max_instances=1``
    and ``coalesce=True`` a long job making the next run wait is the intended behaviour."""

    _ROUTINE = ("maximum number of running instances", "was missed by")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(text in message for text in self._ROUTINE)


_NOISE_FILTER = _RoutineSchedulerNoise()


def redact_processor(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Mask secrets in every value of the event (strings in nested dicts/lists too)."""
    return {key: redact_value(value) for key, value in event_dict.items()}


def shared_processors() -> list[Processor]:
    """The processors structlog events and stdlib records both go through, in order."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,
        redact_processor,
    ]


def _renderer(json_lines: bool) -> Processor:
    if json_lines:
        return structlog.processors.JSONRenderer(default=str, sort_keys=False)
    return structlog.dev.ConsoleRenderer(colors=False, sort_keys=True)


def configure_logging(fmt: Literal["auto", "json", "console"] = "auto", level: str = "info", *,
                      stream: TextIO | None = None) -> bool:
    """Configure structlog and stdlib logging; return True if the output is JSON lines.

    ``fmt="auto"`` picks JSON when ``stream`` (default stderr) is not a terminal, so logs are
    JSON under systemd/journald and readable by people on a console. Safe to call again.
    """
    out = stream or sys.stderr
    json_lines = fmt == "json" or (fmt == "auto" and not _isatty(out))
    level_no = LEVELS.get(level.lower(), logging.INFO)
    renderer = _renderer(json_lines)
    structlog.configure(
        processors=[*shared_processors(), renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level_no),
        logger_factory=structlog.PrintLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(out)
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared_processors()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    ))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("syncd").setLevel(level_no)
    for name in _LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, level_no))
        logging.getLogger(name).propagate = True
    if _NOISE_FILTER not in handler.filters:
        handler.addFilter(_NOISE_FILTER)
    return json_lines


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
