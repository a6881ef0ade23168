"""Validation of API variables the way the profile documents it, collecting field errors.

Variables arrive as strings (query, form) or JSON values (JSON body, ``json_request``), so each
reader accepts both shapes: ``phones`` as ``"380501112233,380672223344"`` or a JSON array,
``details`` as an object or a JSON string of an object, numbers as ints or digit strings.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from . import dates
from .entities import Task
from .problems import invalid

__all__ = ["Fields", "TaskInput", "read_task", "split_values", "normalise_phone", "MAX_PHONES"]

MAX_PHONES = 5
_PHONE = re.compile(r"^\+?\d{5,15}$")
_PHONE_NOISE = str.maketrans("", "", " \t\n-().")


def normalise_phone(value: str) -> str:
    """Strip spaces, dashes, dots and brackets; keep a leading ``+``."""
    return value.translate(_PHONE_NOISE)


def phone_key(value: str) -> str:
    """Digits only: the key under which the dialer's uniqueness compares numbers."""
    return value.lstrip("+")


def split_values(raw: Any) -> list[str] | None:
    """A comma-separated string, a JSON array (or its string form) → list of stripped strings.
    Returns None when ``raw`` has another shape."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        raw = str(raw)
    if isinstance(raw, str):
        text = raw.strip()
        if text.startswith("["):
            try:
                raw = json.loads(text)
            except ValueError:
                return None
        else:
            return [part.strip() for part in text.split(",") if part.strip()]
    if isinstance(raw, list):
        out = []
        for item in raw:
            if isinstance(item, bool) or not isinstance(item, (str, int, float)):
                return None
            if str(item).strip():
                out.append(str(item).strip())
        return out
    return None


class Fields:
    """Reads typed values out of ``params``; problems go to ``errors`` under ``prefix + name``."""

    def __init__(self, params: dict[str, Any], tz: str, prefix: str = "",
                 errors: dict[str, list[str]] | None = None) -> None:
        self.params = params
        self.tz = tz
        self.prefix = prefix
        self.errors: dict[str, list[str]] = {} if errors is None else errors

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(self.prefix + name, []).append(message)

    def present(self, name: str) -> bool:
        return name in self.params and self.params[name] is not None

    def integer(self, name: str, *, required: bool = False, lo: int | None = None,
                hi: int | None = None) -> int | None:
        raw = self.params.get(name)
        if raw is None or raw == "":
            if required:
                self.fail(name, "is required")
            return None
        if isinstance(raw, bool) or not (isinstance(raw, int) or
                                         (isinstance(raw, str) and re.fullmatch(r"-?\d+", raw.strip()))):
            self.fail(name, "must be an integer")
            return None
        value = int(raw)
        if lo is not None and value < lo or hi is not None and value > hi:
            bounds = f"{lo}..{hi}" if hi is not None else f">= {lo}"
            self.fail(name, f"must be in {bounds}")
            return None
        return value

    def text(self, name: str, *, required: bool = False) -> str | None:
        raw = self.params.get(name)
        if raw is None or (required and str(raw).strip() == ""):
            if required:
                self.fail(name, "is required")
            return None
        if isinstance(raw, (dict, list)):
            self.fail(name, "must be a string")
            return None
        return str(raw).strip()

    def flag(self, name: str) -> bool:
        raw = self.params.get(name)
        if raw in (None, "", 0, "0", False, "false"):
            return False
        if raw in (1, "1", True, "true"):
            return True
        self.fail(name, "must be 0 or 1")
        return False

    def phones(self, name: str = "phones", *, required: bool = True,
               limit: int | None = MAX_PHONES) -> list[str] | None:
        raw = self.params.get(name)
        if raw is None or raw == "" or raw == []:
            if required:
                self.fail(name, "is required")
            return None if raw is None else []
        values = split_values(raw)
        if values is None:
            self.fail(name, "must be comma separated numbers or a JSON array of numbers")
            return None
        if required and not values:
            self.fail(name, "is required")
            return None
        if limit is not None and len(values) > limit:
            self.fail(name, f"at most {limit} numbers, got {len(values)}")
            return None
        out = []
        for value in values:
            phone = normalise_phone(value)
            if not _PHONE.match(phone):
                self.fail(name, f"{value!r} is not a phone number")
                return None
            out.append(phone)
        return out

    def values(self, name: str) -> list[str] | None:
        raw = self.params.get(name)
        values = None if raw is None else split_values(raw)
        if not values:
            self.fail(name, "is required (comma separated or a JSON array)")
            return None
        return values

    def date(self, name: str, *, required: bool = False) -> int | None:
        raw = self.params.get(name)
        if raw is None or raw == "":
            if required:
                self.fail(name, "is required")
            return None
        try:
            return dates.parse_local(raw, self.tz)
        except ValueError:
            self.fail(name, "must be a date as dd.mm.yyyy hh:mm:ss")
            return None

    def region(self, name: str = "region") -> str | None:
        """None when absent; ``""`` (present but empty) disables time-zone correction."""
        raw = self.params.get(name)
        if raw is None:
            return None
        if not isinstance(raw, str):
            self.fail(name, "must be an IANA time zone such as Europe/Kiev, or empty")
            return None
        if raw.strip() == "":
            return ""
        if not dates.is_zone(raw.strip()):
            self.fail(name, f"{raw!r} is not an IANA time zone")
            return None
        return raw.strip()

    def obj(self, name: str) -> dict[str, Any] | None:
        raw = self.params.get(name)
        if raw is None or raw == "":
            return None
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                self.fail(name, "must be a JSON object")
                return None
        if not isinstance(raw, dict):
            self.fail(name, "must be a JSON object")
            return None
        return raw

    def check(self) -> None:
        """Raise the 422 when anything failed."""
        if self.errors:
            raise invalid(self.errors)


@dataclass(slots=True)
class TaskInput:
    """One task of a ``create_task`` request: the :class:`~.entities.Task` as its caller sets
    it (a draft: ``id`` and ``company_id`` are 0, status and times the defaults, until
    :meth:`~.state.SandboxState.create_tasks` numbers it) and whether to add it past the
    dialer's uniqueness."""

    task: Task
    force_create: bool = False


def read_task(params: dict[str, Any], tz: str, *, prefix: str = "",
              errors: dict[str, list[str]] | None = None,
              default_dialer: int | None = None) -> TaskInput | None:
    """The ``create_task`` variables → :class:`TaskInput`; None when any field was invalid
    (the problems are in ``errors``)."""
    f = Fields(params, tz, prefix, errors)
    before = sum(len(v) for v in f.errors.values())
    dialer_id = f.integer("dialer_id", required=default_dialer is None, lo=1)
    phones = f.phones("phones") or []
    force_create = f.flag("force_create")
    task = Task(
        id=0, company_id=0,
        dialer_id=dialer_id if dialer_id is not None else default_dialer,  # type: ignore[arg-type]
        phones=phones,
        contact_id=f.integer("contact_id", lo=1),
        bp_id=f.integer("bp_id", lo=1),
        date=f.date("date"),
        import_id=f.integer("import_id", lo=1),
        priority=f.integer("priority", lo=0, hi=2),
        region=f.region(),
        ttl=f.integer("ttl", lo=1),
        user_id=f.integer("user_id", lo=1),
        details=f.obj("details") or {},
    )
    if sum(len(v) for v in f.errors.values()) != before:
        return None
    return TaskInput(task, force_create)
