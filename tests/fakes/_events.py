"""Contact webhooks the fake CRMs send, each the way its vendor documents it.

A fake's ``webhooks.subscribe(url, **auth)`` registers a target; each contact created, changed
or deleted on the fake (by a user or through the API: vendors send events for an
integration's own writes too) is POSTed to every target from a background thread, as the
vendor's servers would (after the change, not inside the request that made it).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable
from urllib.parse import unquote, urlencode

import httpx

__all__ = ["Webhooks", "Subscription", "bitrix24_request", "hubspot_request", "pipedrive_request",
           "kommo_request"]

Request = tuple[str, dict[str, str], bytes]          # url, headers, body (always POST)


@dataclass
class Subscription:
    url: str
    auth: dict[str, Any] = field(default_factory=dict)


class Webhooks:
    """Targets of one fake and the thread that delivers its events (``sent`` records the
    answers' status codes; ``drain()`` waits until every queued event was delivered)."""

    def __init__(self, build: Callable[[Subscription, str, str], Request]) -> None:
        self.build = build
        self.targets: list[Subscription] = []
        self.sent: list[int] = []
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None

    def subscribe(self, url: str, **auth: Any) -> None:
        self.targets.append(Subscription(url, auth))
        if self._thread is None:
            self._thread = threading.Thread(target=self._deliver, name="fake-crm-webhooks", daemon=True)
            self._thread.start()

    def emit(self, kind: str, record_id: Any) -> None:
        """``kind``: add, update or delete."""
        for sub in self.targets:
            self._queue.put(self.build(sub, kind, str(record_id)))

    def drain(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)

    def _deliver(self) -> None:
        with httpx.Client(timeout=5.0) as client:
            while True:
                url, headers, body = self._queue.get()
                try:
                    self.sent.append(client.post(url, headers=headers, content=body).status_code)
                except httpx.HTTPError:
                    self.sent.append(0)
                finally:
                    self._queue.task_done()


_handler_ids = itertools.count(1)


def bitrix24_request(sub: Subscription, kind: str, rid: str) -> Request:
    """An outbound event: form-encoded, the application token under ``auth``."""
    event = {"add": "ONCRMCONTACTADD", "update": "ONCRMCONTACTUPDATE", "delete": "ONCRMCONTACTDELETE"}[kind]
    form = {"event": event, "event_handler_id": str(next(_handler_ids)), "data[FIELDS][ID]": rid,
            "ts": str(int(time.time())), "auth[domain]": "portal.bitrix24.test",
            "auth[client_endpoint]": "https://portal.bitrix24.test/rest/",
            "auth[server_endpoint]": "https://oauth.bitrix.info/rest/", "auth[member_id]": "a1b2c3",
            "auth[application_token]": sub.auth.get("application_token", "")}
    return sub.url, {"content-type": "application/x-www-form-urlencoded"}, urlencode(form).encode()


def hubspot_request(sub: Subscription, kind: str, rid: str) -> Request:
    """A webhook batch (a JSON array), signed v3 (and v1) with the app's client secret."""
    now = int(time.time() * 1000)
    kind_name = {"add": "contact.creation", "update": "contact.propertyChange", "delete": "contact.deletion"}[kind]
    body = json.dumps([{"eventId": next(_handler_ids), "subscriptionId": 1, "portalId": 62515, "appId": 54321,
                        "occurredAt": now, "subscriptionType": kind_name, "attemptNumber": 0,
                        "objectId": int(rid), "changeSource": "CRM",
                        **({"propertyName": "phone", "propertyValue": ""} if kind == "update" else {})}]).encode()
    secret = sub.auth.get("client_secret", "")
    stamp = str(sub.auth.get("timestamp_ms", now))
    message = b"POST" + unquote(sub.url).encode() + body + stamp.encode()
    v3 = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    v1 = hashlib.sha256(secret.encode() + body).hexdigest()
    return sub.url, {"content-type": "application/json", "x-hubspot-signature-v3": v3,
                     "x-hubspot-request-timestamp": stamp, "x-hubspot-signature": v1,
                     "x-hubspot-signature-version": "v1"}, body


def pipedrive_request(sub: Subscription, kind: str, rid: str) -> Request:
    """A v2 webhook (JSON ``meta`` + ``data``) with the basic auth set on the webhook."""
    action = {"add": "create", "update": "change", "delete": "delete"}[kind]
    body = json.dumps({"meta": {"action": action, "entity": "person", "entity_id": rid,
                                "id": str(uuid.uuid4()), "company_id": "1", "user_id": "1",
                                "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
                                "version": "2.0", "webhook_id": "7", "is_bulk_edit": False,
                                "type": "general", "change_source": "app"},
                       "data": None if kind == "delete" else {"id": int(rid)},
                       "previous": None}).encode()
    user, password = sub.auth.get("user", ""), sub.auth.get("password", "")
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    return sub.url, {"content-type": "application/json", "authorization": f"Basic {basic}"}, body


def kommo_request(sub: Subscription, kind: str, rid: str) -> Request:
    """A webhook: form-encoded ``contacts[update][0][id]=...`` with the account; Kommo signs
    nothing (the URL registered carries the receiver's secret)."""
    form = {f"contacts[{kind}][0][id]": rid, f"contacts[{kind}][0][type]": "contact",
            f"contacts[{kind}][0][last_modified]": str(int(time.time())),
            "account[subdomain]": sub.auth.get("subdomain", "acme"), "account[id]": "29000000"}
    return sub.url, {"content-type": "application/x-www-form-urlencoded"}, urlencode(form).encode()


def payload_of(build: Callable[[Subscription, str, str], Request], url: str, kind: str, rid: str,
               **auth: Any) -> Request:
    """The request a fake would send (tests that post it themselves, e.g. tampered)."""
    return build(Subscription(url, auth), kind, rid)
