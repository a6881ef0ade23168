"""The configuration's models (the keys of DESIGN.md are the contract) and how their
validation errors read: one line a problem, ``<key path>: <what is wrong>``, never a secret.

Loading a file (secret references, cross-field checks) is :mod:`syncd.config`; the checks
spanning several keys are :mod:`syncd.config_checks`. Both build on this module.
"""

from __future__ import annotations

import difflib
import json
import re
from datetime import timedelta
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from .config_values import Name, OkitokiId, check_number
from .durations import parse_duration
from .redact import is_secret_key

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
    "GuardConfig",
    "VerifyConfig",
    "Duration",
    "key_path",
    "model_at",
    "unknown_key_message",
    "format_validation_errors",
]

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


Duration = Annotated[timedelta, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    @field_validator("*", mode="before")
    @classmethod
    def _numbers_are_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        return check_number(value, field.annotation) if field else value


class DaemonConfig(_Strict):
    state_url: str = "sqlite:////var/lib/syncd/state.db"
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    shutdown_timeout: Duration = timedelta(seconds=30)
    http_listen: str | None = None          # "127.0.0.1:9410": /healthz, /metrics, /events/okitoki
    instance_id: Name | None = None         # defaults to hostname:pid
    push_interval: Duration = timedelta(seconds=5)
    housekeeping_interval: Duration = timedelta(minutes=10)
    jitter: Duration = timedelta(seconds=2)


class OkitokiConfig(_Strict):
    url: str
    api_token: Name | None = None
    api_token_file: str | None = None
    timezone: str = "Europe/Kyiv"
    requests_per_minute: int = Field(60, ge=1, le=100_000)
    # Requests in flight at once (all through the one rate limiter and budget): enough to
    # use the whole rate limit when each request takes a network round trip.
    max_in_flight: int = Field(8, ge=1, le=32)
    daily_request_budget: int | None = Field(20000, ge=1)
    poll_interval: Duration = timedelta(seconds=30)
    timeout: Duration = timedelta(seconds=15)
    webhook_token: Name | None = None       # shared token Oki-Toki's event webhooks must carry
    webhook_token_file: str | None = None
    # Call hints from webhooks that reach the daemon per minute (the rest wait for the walk).
    webhook_hints_per_minute: int = Field(30, ge=1, le=10_000)
    # Calls pulls an hour that look again for hinted calls not yet readable in the log
    # (engine.hints.CallRetries); 0: a hinted call not in the log waits for the poll.
    webhook_retries_per_hour: int = Field(240, ge=0, le=3600)
    endpoints: dict[str, str] = Field(default_factory=dict)  # operation → path override
    profile: str | None = None   # a TOML file overriding the shipped Oki-Toki API profile
    # What one API request costs (in the account's currency), for `syncd journal --by`.
    price_per_request: float | None = Field(None, ge=0, allow_inf_nan=False)


class CrmConfig(_Strict):
    connector: Name
    poll_interval: Duration = timedelta(seconds=30)
    requests_per_minute: int | None = Field(None, ge=1, le=100_000)  # None: the connector's default
    max_in_flight: int | None = Field(None, ge=1, le=32)  # None: the connector's default
    daily_request_budget: int | None = Field(None, ge=1)
    timeout: Duration = timedelta(seconds=15)
    # Re-read changes of the last `overlap` at every poll (late commits, search indexes that
    # lag); None: the connector's own default (Capabilities.change_overlap).
    overlap: Duration | None = None
    # A change time later than now + clock_skew is reported as being in the future.
    clock_skew: Duration = timedelta(minutes=5)
    # Record ids CRM webhooks (/events/crm) may hint per minute; the rest wait for the poll.
    webhook_hints_per_minute: int = Field(120, ge=1, le=10_000)
    options: dict[str, Any] = Field(default_factory=dict)  # validated by the connector's Options


SyncDirection = Literal["both", "to_crm", "to_okitoki"]
ConflictPolicy = Literal["crm", "okitoki", "newest", "forward", "manual"]


class FieldMap(_Strict):
    crm: Name | None = None
    okitoki: Name | None = None
    sync: SyncDirection = "both"
    conflict: ConflictPolicy = "newest"


class ContactsConfig(_Strict):
    default_region: str = "UA"
    create_in_okitoki: bool = True
    create_in_crm: bool = False
    on_delete: Literal["unlink", "propagate"] = "unlink"   # propagate: delete the other side's record too
    # A CRM contact with no phone: "report" (not created in Oki-Toki, counted in status) or "create".
    without_phone: Literal["report", "create"] = "report"
    fields: dict[str, FieldMap] = Field(default_factory=dict)


class DialerRule(_Strict):
    name: Name
    dialer_id: OkitokiId
    when: dict[str, list[Any]] = Field(default_factory=dict)  # canonical field → allowed values
    priority: int | None = Field(None, ge=0, le=2)
    ttl: Duration | None = None
    region_from_phone: bool = False


class CallsConfig(_Strict):
    to_crm: bool = True
    settle_delay: Duration = timedelta(seconds=60)
    # The longest call that must reach the CRM: the call log is re-read this far back (it
    # filters by start time, a call shows at hangup). Grows by itself when longer calls show.
    max_call_duration: Duration = timedelta(hours=4)
    overlap: Duration | None = None         # deprecated: folded into max_call_duration
    unknown_numbers: Literal["skip", "create_contact"] = "skip"
    status_field: Name = "status"           # canonical field the outcome writes
    status_order: list[str] = Field(default_factory=list)
    outcome_status: dict[str, str] = Field(default_factory=dict)  # answered|no_answer|busy|failed → status


class DoNotCallConfig(_Strict):
    crm_field: Name | None = None
    list_id: OkitokiId | None = None
    # after each answered call, ask the blacklist about the number (an agent may have listed it)
    check_after_calls: bool = True


def _interval_or_off(value: Any) -> timedelta | None:
    """``"1d"`` → timedelta; ``"0"``, ``0``, ``"off"``, ``false`` → None (disabled)."""
    if value in (0, False, None) or (isinstance(value, str) and value.strip().lower() in ("0", "off")):
        return None
    interval = parse_duration(value)
    if interval <= timedelta(0):
        raise ValueError('must be a positive duration, or "off"')
    return interval


class VerifyConfig(_Strict):
    interval: Annotated[timedelta | None, BeforeValidator(_interval_or_off)] = timedelta(days=1)
    repair: bool = True                     # the daemon's verify heals what it finds
    calls_days: int = Field(2, ge=0, le=31)  # days of the call log checked (0: none)


class GuardConfig(_Strict):
    """The flood guard: operations of one cycle past these limits are held, not sent."""

    max_task_removals: int = Field(200, ge=0)           # 0: no limit
    max_changed_share: float = Field(0.10, gt=0, le=1, allow_inf_nan=False)
    changed_floor: int = Field(100, ge=0)                # never held below this many contacts


class Config(_Strict):
    daemon: DaemonConfig = DaemonConfig()
    okitoki: OkitokiConfig
    crm: CrmConfig
    contacts: ContactsConfig = ContactsConfig()
    dialer: list[DialerRule] = Field(default_factory=list)
    calls: CallsConfig = CallsConfig()
    do_not_call: DoNotCallConfig = DoNotCallConfig()
    verify: VerifyConfig = VerifyConfig()
    guard: GuardConfig = GuardConfig()


# --- validation errors in words -----------------------------------------------------------


def key_path(loc: tuple[Any, ...] | list[Any], prefix: str = "") -> str:
    """``("dialer", 1, "ttl")`` → ``dialer[1].ttl`` (indexes count from 0)."""
    out = prefix
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            text = str(part) if _BARE_KEY.match(str(part)) else json.dumps(str(part))
            out += f".{text}" if out else text
    return out


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return json.dumps(value) if isinstance(value, (bool, int, float)) or value is None else repr(value)


def _unwrap(tp: Any) -> Any:
    while True:
        origin = get_origin(tp)
        if origin is Annotated:
            tp = get_args(tp)[0]
        elif origin is Union or type(tp).__name__ == "UnionType":
            tp = next(a for a in get_args(tp) if a is not type(None))
        else:
            return tp


def model_at(root: type[BaseModel], loc: tuple[Any, ...] | list[Any]) -> type[BaseModel] | None:
    """The pydantic model found by walking ``loc`` down from ``root`` (None if not a model)."""
    tp: Any = root
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        elif get_origin(tp) is list and isinstance(part, int):
            tp = get_args(tp)[0]
        elif get_origin(tp) is dict:
            tp = get_args(tp)[1]
        else:
            return None
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def unknown_key_message(key: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if close:
        return f'{key}: unknown key (did you mean "{close[0]}"?)'
    return f"{key}: unknown key; known keys here: {', '.join(known) or 'none'}"


def format_validation_errors(errors: list[dict[str, Any]], root: type[BaseModel],
                             prefix: str = "") -> list[str]:
    """pydantic errors → one line each, ``<key path>: <what is wrong>``; never shows secrets."""
    lines: list[str] = []
    for err in errors:
        loc = tuple(err["loc"])
        key = key_path(loc, prefix)
        kind, msg = err["type"], err["msg"]
        last = str(loc[-1]) if loc else ""
        if kind == "extra_forbidden":
            parent = model_at(root, loc[:-1])
            lines.append(unknown_key_message(key, last, list(parent.model_fields) if parent else []))
        elif kind == "missing":
            lines.append(f"{key}: is required")
        elif kind == "list_type" and loc == ("dialer",):
            lines.append("dialer: write each rule as an [[dialer]] table (an array of tables)")
        elif kind == "value_error":
            lines.append(f"{key}: {msg.removeprefix('Value error, ')}")
        else:
            msg = msg.replace("Input should be", "should be")
            shown = "" if is_secret_key(last) else f" (got {_show(err.get('input'))})"
            lines.append(f"{key}: {msg}{shown}")
    return lines
