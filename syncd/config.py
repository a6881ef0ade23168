"""TOML → validated configuration models (the keys of DESIGN.md are the contract).

``load_config(path)`` reads the file, resolves secret references (``${ENV}``, ``*_file``),
validates everything at once and raises :class:`syncd.errors.ConfigError` with one line per
problem, each naming the file and the key path (``dialer[1].ttl: "3x" is not a duration``).
Unknown keys are errors, with a "did you mean" where a known key is close.
Durations are strings at the edge (``"30s"``, ``"10m"``, ``"3d"``) and ``timedelta`` inside.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = [
    "Config",
    "DaemonConfig",
    "OkitokiConfig",
    "CrmConfig",
    "ContactsConfig",
    "FieldMap",
    "DialerRule",
    "CallsConfig",
    "DoNotCallConfig",
    "parse_duration",
]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(value: Any) -> timedelta:
    """``"30s"``/``"10m"``/``"3d"`` (or a timedelta) → timedelta; ValueError otherwise."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    raise ValueError(f"{value!r} is not a duration (use e.g. \"30s\", \"10m\", \"3d\")")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DaemonConfig(_Strict):
    state_url: str = "sqlite:////var/lib/syncd/state.db"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_timeout: Duration = timedelta(seconds=30)
    http_listen: str | None = None          # "127.0.0.1:9410": /healthz, /metrics, /events/okitoki
    instance_id: str | None = None          # defaults to hostname:pid
    push_interval: Duration = timedelta(seconds=5)
    housekeeping_interval: Duration = timedelta(minutes=10)
    jitter: Duration = timedelta(seconds=2)


class OkitokiConfig(_Strict):
    url: str
    api_token: str | None = None
    api_token_file: str | None = None
    timezone: str = "Europe/Kyiv"
    requests_per_minute: int = Field(60, ge=1)
    daily_request_budget: int | None = Field(20000, ge=1)
    poll_interval: Duration = timedelta(seconds=30)
    timeout: Duration = timedelta(seconds=15)
    webhook_token: str | None = None        # shared token Oki-Toki's event webhooks must carry
    webhook_token_file: str | None = None
    endpoints: dict[str, str] = Field(default_factory=dict)  # operation → path override


class CrmConfig(_Strict):
    connector: str
    poll_interval: Duration = timedelta(seconds=30)
    requests_per_minute: int | None = Field(None, ge=1)   # None: the connector's default
    daily_request_budget: int | None = Field(None, ge=1)
    timeout: Duration = timedelta(seconds=15)
    options: dict[str, Any] = Field(default_factory=dict)  # validated by the connector's Options


SyncDirection = Literal["both", "to_crm", "to_okitoki"]
ConflictPolicy = Literal["crm", "okitoki", "newest", "forward", "manual"]


class FieldMap(_Strict):
    crm: str | None = None
    okitoki: str | None = None
    sync: SyncDirection = "both"
    conflict: ConflictPolicy = "newest"


class ContactsConfig(_Strict):
    default_region: str = "UA"
    create_in_okitoki: bool = True
    create_in_crm: bool = False
    fields: dict[str, FieldMap] = Field(default_factory=dict)


class DialerRule(_Strict):
    name: str
    dialer_id: int
    when: dict[str, list[Any]] = Field(default_factory=dict)  # canonical field → allowed values
    priority: int | None = Field(None, ge=0, le=2)
    ttl: Duration | None = None
    region_from_phone: bool = False


class CallsConfig(_Strict):
    to_crm: bool = True
    settle_delay: Duration = timedelta(seconds=60)
    overlap: Duration = timedelta(minutes=10)
    unknown_numbers: Literal["skip", "create_contact"] = "skip"
    status_field: str = "status"            # canonical field the outcome writes
    status_order: list[str] = Field(default_factory=list)
    outcome_status: dict[str, str] = Field(default_factory=dict)  # answered|no_answer|busy|failed → status


class DoNotCallConfig(_Strict):
    crm_field: str | None = None
    list_id: int | None = None


class Config(_Strict):
    daemon: DaemonConfig = DaemonConfig()
    okitoki: OkitokiConfig
    crm: CrmConfig
    contacts: ContactsConfig = ContactsConfig()
    dialer: list[DialerRule] = Field(default_factory=list)
    calls: CallsConfig = CallsConfig()
    do_not_call: DoNotCallConfig = DoNotCallConfig()
