"""Injected trouble: a seeded random mix of faults, and a per-token rate limit.

A fault plan is a list of rules, each ``{"kind": ..., "rate": 0..1, "operations": [...]?,
"count": N?, ...}``. For each ``/api/v1`` request one seeded draw picks at most one rule from
the mix (cumulative rates, in order); ``latency`` rules are drawn separately and add delay on
top. ``count`` limits how many times a rule fires (``{"kind":"status","status":500,"rate":1,
"count":2}`` = "the next two requests fail"). Kinds:

- ``status``: answer ``status`` (default 500) with the JSON error body.
- ``retry_after``: 429 with ``Retry-After`` = ``seconds`` (default 1), in ``form`` ``seconds``
  or ``http-date``.
- ``latency``: wait ``seconds`` (default 0.5) before handling.
- ``timeout``: hold the request ``seconds`` (default 30, longer than a client timeout), then
  answer 504. With ``"apply": true`` the operation is performed first (an ambiguous outcome).
- ``truncated_json``, ``html`` (an HTML error page, ``status`` default 502), ``error_200``
  (HTTP 200 with ``{"error": ...}``): malformed answers; ``"apply": true`` performs the
  operation first.
"""

from __future__ import annotations

import email.utils
import math
import random
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FaultPlan", "Fault", "RateGate", "KINDS", "retry_after_header"]

KINDS = ("status", "retry_after", "latency", "timeout", "truncated_json", "html", "error_200")


@dataclass
class Fault:
    kind: str
    rate: float = 1.0
    operations: list[str] | None = None
    count: int | None = None
    status: int | None = None
    seconds: float | None = None
    form: str = "seconds"
    apply: bool = False
    fired: int = 0

    @classmethod
    def parse(cls, data: dict[str, Any]) -> "Fault":
        kind = data.get("kind")
        if kind not in KINDS:
            raise ValueError(f"fault kind must be one of {KINDS}, got {kind!r}")
        rate = float(data.get("rate", 1.0))
        if not 0.0 <= rate <= 1.0:
            raise ValueError("fault rate must be within 0..1")
        if data.get("form", "seconds") not in ("seconds", "http-date"):
            raise ValueError("fault form is 'seconds' or 'http-date'")
        ops = data.get("operations")
        return cls(kind=kind, rate=rate, operations=list(ops) if ops else None,
                   count=None if data.get("count") is None else int(data["count"]),
                   status=None if data.get("status") is None else int(data["status"]),
                   seconds=None if data.get("seconds") is None else float(data["seconds"]),
                   form=data.get("form", "seconds"), apply=bool(data.get("apply", False)))

    def applies(self, operation: str) -> bool:
        spent = self.count is not None and self.fired >= self.count
        return not spent and (self.operations is None or operation in self.operations)


@dataclass
class FaultPlan:
    faults: list[Fault] = field(default_factory=list)
    seed: int | None = None

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    @classmethod
    def parse(cls, data: dict[str, Any]) -> "FaultPlan":
        rules = data.get("faults", data.get("rules", []))
        if not isinstance(rules, list):
            raise ValueError("faults must be a list of rules")
        return cls([Fault.parse(r) for r in rules], data.get("seed"))

    def pick(self, operation: str) -> tuple[float, Fault | None]:
        """(added latency in seconds, the fault to answer with or None) for one request."""
        with self._lock:
            delay = 0.0
            for fault in self.faults:
                if fault.kind == "latency" and fault.applies(operation) and self._rng.random() < fault.rate:
                    fault.fired += 1
                    delay += fault.seconds if fault.seconds is not None else 0.5
            draw, edge = self._rng.random(), 0.0
            for fault in self.faults:
                if fault.kind == "latency" or not fault.applies(operation):
                    continue
                edge += fault.rate
                if draw < edge:
                    fault.fired += 1
                    return delay, fault
            return delay, None

    def describe(self) -> dict[str, Any]:
        with self._lock:
            return {"seed": self.seed, "faults": [
                {k: v for k, v in vars(f).items()} for f in self.faults]}


def retry_after_header(seconds: float, form: str, now: float) -> str:
    """``Retry-After`` for a wait of ``seconds``: whole seconds (rounded up) or an HTTP date."""
    if form == "http-date":
        return email.utils.formatdate(math.ceil(now + seconds), usegmt=True)
    return str(max(1, math.ceil(seconds)))


class RateGate:
    """Per-token sliding one-minute window. Refused requests do not count."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, deque[float]] = {}

    def clear(self) -> None:
        with self._lock:
            self._seen.clear()

    def admit(self, key: str, per_minute: int | None, now: float) -> tuple[bool, float, int | None]:
        """(admitted, seconds to wait when refused, requests remaining in the window)."""
        if not per_minute:
            return True, 0.0, None
        with self._lock:
            window = self._seen.setdefault(key, deque())
            while window and window[0] <= now - 60.0:
                window.popleft()
            if len(window) >= per_minute:
                return False, window[0] + 60.0 - now, 0
            window.append(now)
            return True, 0.0, per_minute - len(window)
