"""The sandbox's own settings (not Oki-Toki's): timing of the call log, limits, persistence.

Durations are float seconds here; the CLI accepts strings such as ``"500ms"``, ``"2s"``,
``"1m"`` and converts them with :func:`seconds_of`. Most settings can be changed while the
sandbox runs through ``POST /_sandbox/settings``.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ... import durations

__all__ = ["SandboxSettings", "seconds_of", "DEFAULT_TIMEZONE"]

DEFAULT_TIMEZONE = "Europe/Kyiv"
_SECONDS = re.compile(r"\s*\d+(?:\.\d+)?\s*")


def seconds_of(text: str | float | int | None) -> float | None:
    """``"0s"``, ``"250ms"``, ``"1.5s"``, ``"2m"``, ``3``, ``"3"`` → seconds; None/"" → None.
    Units as in the daemon's configuration (:func:`syncd.durations.parse_duration`); a bare
    number is seconds."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    if _SECONDS.fullmatch(str(text)):
        return float(str(text))
    try:
        return durations.parse_duration(str(text)).total_seconds()
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 0s, 500ms, 2m)") from None


@dataclass
class SandboxSettings:
    """Behaviour knobs. Times in seconds."""

    #: Seconds after a simulated call before it is visible in ``calls/log``.
    settle_delay: float = 0.0
    #: Seconds after a call became visible before its one late update (``record_url``) lands;
    #: None: calls are complete when they appear and never change afterwards.
    call_update_delay: float | None = None
    #: Time zone of companies created without one.
    timezone: str = DEFAULT_TIMEZONE
    #: Per-token requests a minute on ``/api/v1``; None: unlimited.
    rate_limit_per_minute: int | None = None
    #: ``seconds`` or ``http-date``: the form of ``Retry-After`` on a rate-limit 429.
    retry_after_form: str = "seconds"
    #: At most this many tasks in one ``imports/tasks/add``.
    max_bulk_tasks: int = 1000
    #: At most this many rows a page in paged reads.
    max_per_page: int = 1000
    #: Webhook delivery: attempts in all, and the first retry delay (doubles each time).
    webhook_max_attempts: int = 3
    webhook_backoff: float = 0.2
    webhook_timeout: float = 5.0
    #: Bearer token the admin surface requires; None: open (the sandbox binds loopback).
    admin_token: str | None = None
    #: Persist state to this JSON file (atomic replace); None: memory only.
    data_file: Path | None = None
    #: Coalesce writes of the data file: at most one every this many seconds.
    save_interval: float = 0.2
    #: The company's own number, used as ``ani`` of outgoing and ``dnis`` of incoming calls.
    line_number: str = "380440000000"
    #: Base of recording URLs.
    record_base_url: str = "https://records.sandbox.invalid"

    #: Settings ``POST /_sandbox/settings`` may change at run time.
    MUTABLE = ("settle_delay", "call_update_delay", "timezone", "rate_limit_per_minute",
               "retry_after_form", "max_bulk_tasks", "max_per_page", "webhook_max_attempts",
               "webhook_backoff", "webhook_timeout", "line_number")

    def update(self, changes: dict[str, Any]) -> list[str]:
        """Apply ``changes`` (durations may be strings); returns the names changed.
        Raises ``ValueError`` naming an unknown or immutable setting or a bad value."""
        known = {f.name for f in fields(self)}
        for name, value in changes.items():
            if name not in known or name not in self.MUTABLE:
                raise ValueError(f"setting {name!r} cannot be changed at run time")
            if name in ("settle_delay", "call_update_delay", "webhook_backoff", "webhook_timeout"):
                value = seconds_of(value)
                if name != "call_update_delay" and value is None:
                    raise ValueError(f"setting {name!r} needs a duration")
            elif name in ("rate_limit_per_minute",):
                value = None if value in (None, 0, "", "0") else int(value)
            elif name in ("max_bulk_tasks", "max_per_page", "webhook_max_attempts"):
                value = int(value)
            elif name == "retry_after_form" and value not in ("seconds", "http-date"):
                raise ValueError("retry_after_form is 'seconds' or 'http-date'")
            elif name == "timezone":
                from .dates import is_zone
                if not isinstance(value, str) or not is_zone(value):
                    raise ValueError(f"unknown time zone {value!r}")
            setattr(self, name, value)
        return list(changes)

    def public(self) -> dict[str, Any]:
        data = asdict(self)
        data["admin_token"] = "***" if self.admin_token else None
        data["data_file"] = str(self.data_file) if self.data_file else None
        return data
