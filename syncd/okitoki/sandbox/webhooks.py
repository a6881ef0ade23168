"""Events → outgoing webhooks, as Oki-Toki's "integrations" deliver them.

A rule is ``{"event": "call_finished", "url": "http://127.0.0.1:9410/events/okitoki",
"method": "GET"|"POST"|"JSON", "template": "session_id={session_id}&phone={ani}",
"params": {"token": "..."}, "company_id": N?}``. The template is split into ``name=value``
pairs first, then ``{variables}`` are filled in from the event, so values need no escaping:
GET sends them as the query string, POST as a form body, JSON as a JSON object. ``params`` are
the "common request parameters" added to every request of the rule.

Deliveries are queued (state ``pending``) and sent by a background thread; a failure (network
error or non-2xx) is retried with doubling backoff until ``webhook_max_attempts``, then the
delivery is ``failed``. Every attempt is listed by ``GET /_sandbox/webhooks/deliveries``.
"""

from __future__ import annotations

import re
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx
import structlog

from ...redact import redact
from .settings import SandboxSettings
from .state import Event

__all__ = ["WebhookRule", "Delivery", "WebhookDispatcher", "render_template"]

log = structlog.get_logger()
METHODS = ("GET", "POST", "JSON")
_VAR = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass
class WebhookRule:
    id: int
    event: str
    url: str
    method: str = "POST"
    template: str = ""
    params: dict[str, str] = field(default_factory=dict)
    company_id: int | None = None

    @classmethod
    def parse(cls, id: int, data: dict[str, Any]) -> "WebhookRule":
        method = str(data.get("method", "POST")).upper()
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}")
        if not data.get("event") or not str(data.get("url", "")).startswith(("http://", "https://")):
            raise ValueError("a webhook rule needs an event and an http(s) url")
        return cls(id=id, event=str(data["event"]), url=str(data["url"]), method=method,
                   template=str(data.get("template", "")),
                   params={str(k): str(v) for k, v in (data.get("params") or {}).items()},
                   company_id=data.get("company_id"))


@dataclass
class Delivery:
    id: int
    rule_id: int
    event: str
    method: str
    url: str
    payload: dict[str, str]
    state: str = "pending"  # pending | success | failed
    attempts: int = 0
    created_at: float = 0.0
    next_attempt_at: float = 0.0
    finished_at: float | None = None
    last_status: int | None = None
    last_error: str | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def render_template(template: str, variables: dict[str, Any]) -> dict[str, str]:
    """``"a={x}&b=c"`` + ``{"x": 1}`` → ``{"a": "1", "b": "c"}`` (unknown variables → "")."""
    def fill(text: str) -> str:
        return _VAR.sub(lambda m: "" if variables.get(m.group(1)) is None else str(variables[m.group(1)]), text)
    pairs: dict[str, str] = {}
    for part in template.split("&"):
        if part.strip():
            name, _, value = part.partition("=")
            pairs[fill(name.strip())] = fill(value)
    return pairs


class WebhookDispatcher:
    """Holds rules and deliveries; ``start()`` runs the sender thread, ``stop()`` ends it."""

    def __init__(self, settings: SandboxSettings) -> None:
        self.settings = settings
        self.rules: dict[int, WebhookRule] = {}
        self.deliveries: dict[int, Delivery] = {}
        self._next_rule = self._next_delivery = 1
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def add_rule(self, data: dict[str, Any]) -> WebhookRule:
        with self._cond:
            rule = WebhookRule.parse(self._next_rule, data)
            self._next_rule += 1
            self.rules[rule.id] = rule
            return rule

    def clear(self) -> None:
        with self._cond:
            self.rules.clear()
            self.deliveries.clear()

    def __call__(self, event: Event) -> None:
        """State listener: queue one delivery per matching rule."""
        kind, company_id, variables = event
        now = time.time()
        with self._cond:
            for rule in self.rules.values():
                if rule.event != kind or (rule.company_id is not None and rule.company_id != company_id):
                    continue
                payload = {**rule.params, **render_template(rule.template, variables)}
                delivery = Delivery(self._next_delivery, rule.id, kind, rule.method, rule.url,
                                    payload, created_at=now, next_attempt_at=now)
                self._next_delivery += 1
                self.deliveries[delivery.id] = delivery
            self._cond.notify_all()

    def report(self) -> list[dict[str, Any]]:
        with self._cond:
            return [asdict(d) for d in self.deliveries.values()]

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="sandbox-webhooks", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _run(self) -> None:
        with httpx.Client(timeout=self.settings.webhook_timeout) as client:
            while True:
                with self._cond:
                    if self._stopping:
                        return
                    now = time.time()
                    due = [d for d in self.deliveries.values()
                           if d.state == "pending" and d.next_attempt_at <= now]
                    if not due:
                        waits = [d.next_attempt_at - now for d in self.deliveries.values() if d.state == "pending"]
                        self._cond.wait(timeout=min(waits, default=1.0))
                        continue
                for delivery in due:
                    self._attempt(client, delivery)

    def _attempt(self, client: httpx.Client, delivery: Delivery) -> None:
        status, error = None, None
        try:
            if delivery.method == "GET":
                response = client.get(delivery.url, params=delivery.payload)
            elif delivery.method == "POST":
                response = client.post(delivery.url, data=delivery.payload)
            else:
                response = client.post(delivery.url, json=delivery.payload)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except httpx.HTTPError as exc:
            error = redact(f"{type(exc).__name__}: {exc}")
        now = time.time()
        with self._cond:
            delivery.attempts += 1
            delivery.last_status, delivery.last_error = status, error
            delivery.history.append({"at": now, "status": status, "error": error})
            if error is None:
                delivery.state, delivery.finished_at = "success", now
            elif delivery.attempts >= self.settings.webhook_max_attempts:
                delivery.state, delivery.finished_at = "failed", now
            else:
                delivery.next_attempt_at = now + self.settings.webhook_backoff * 2 ** (delivery.attempts - 1)
        log.debug("sandbox.webhook", delivery=delivery.id, state=delivery.state, error=error)
