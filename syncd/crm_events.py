"""CRM change events (``/events/crm``) as hints: "look at record X now".

A connector that can take its CRM's webhooks has ``webhook_ids(request) -> list[str] | None``
(see :class:`WebhookRequest`); it checks the vendor's authentication (Bitrix24's
``application_token``, HubSpot's signature v3, Pipedrive's basic auth, a token in Kommo's
webhook URL) and names the contacts the event is about. Nothing in an event is trusted: the
daemon reads each named record through the API (:meth:`syncd.engine.syncer.Syncer.pull_crm_hinted`)
and the poll stays the safety net, so a lost, forged or replayed event costs at most a read.

The endpoint meets the bar of ``/events/okitoki`` (:mod:`syncd.webhooks`, whose helpers it
reuses): authentication before the body wherever the vendor puts it outside the body, bodies
of at most ``MAX_BODY`` bytes (413), field and id limits (400), never a 5xx, and at most
``hints_per_minute`` record ids a minute reach the daemon (the rest are dropped and counted:
the poll brings them).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import structlog
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from .webhooks import (MAX_FIELDS, BodyTooLarge, HintWindow, client_gone, never_a_5xx, read_body,
                       too_large)

__all__ = ["WebhookRequest", "WebhookRefused", "WebhookOff", "CrmEventReceiver", "MAX_IDS"]

log = structlog.get_logger("syncd.web")
MAX_IDS = MAX_FIELDS                      # record ids one event may name
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


class WebhookRefused(Exception):
    """The request does not carry the vendor's authentication (answered 401)."""


class WebhookOff(Exception):
    """The connector can take webhooks, but their secret is not configured (answered 404)."""


@dataclass(frozen=True)
class WebhookRequest:
    """What a connector sees of one webhook request. ``headers`` has lower-case names;
    ``url`` is the URL as the listener received it; ``body`` is None on the first call,
    made before the body is read (raise :class:`WebhookRefused` there if what is outside the
    body already fails, return None if the body is needed)."""

    method: str
    url: str
    headers: Mapping[str, str]
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None


class CrmEventReceiver:
    """The ``/events/crm`` endpoint of one daemon. ``hint(ids) -> int`` hands record ids to
    the daemon and returns how many were new (not already waiting)."""

    def __init__(self, connector: Any, hint: Callable[[list[str]], int], metrics: Any, *,
                 hints_per_minute: int = 120, clock: Callable[[], float] = time.monotonic) -> None:
        self.connector, self.hint, self.metrics = connector, hint, metrics
        self.window = HintWindow(hints_per_minute, clock)

    def _count(self, result: str, n: int = 1) -> None:
        counter = getattr(self.metrics, "crm_events", None)
        if counter is not None and n:
            counter.labels(result=result).inc(n)

    async def handle(self, request: Request) -> JSONResponse:
        return await never_a_5xx(self._receive, request, log_event="crm_webhook_error",
                                 malformed=lambda: self._count("malformed"))

    async def _receive(self, request: Request) -> JSONResponse:
        parse = getattr(self.connector, "webhook_ids", None)
        if parse is None:
            return JSONResponse({"error": "this CRM connector takes no webhooks"}, status_code=404)
        seen = WebhookRequest(method=request.method, url=str(request.url),
                              headers={k.lower(): v for k, v in request.headers.items()},
                              query=dict(request.query_params))
        try:
            ids = parse(seen)
            if ids is None:
                try:
                    body = await read_body(request)
                except BodyTooLarge:
                    self._count("too_large")
                    return too_large()
                except ClientDisconnect:
                    return client_gone()
                ids = parse(replace(seen, body=body)) or []
        except WebhookOff as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        except WebhookRefused:
            self._count("unauthorized")
            log.warning("crm_webhook_unauthorized", client=request.client.host if request.client else None)
            return JSONResponse({"error": "wrong or missing authentication"}, status_code=401)
        except ValueError:
            self._count("malformed")
            return JSONResponse({"error": "malformed event"}, status_code=400)
        ids = list(dict.fromkeys(str(i) for i in ids))
        if len(ids) > MAX_IDS or not all(_ID.match(i) for i in ids):
            self._count("malformed")
            return JSONResponse({"error": f"record ids must be at most {MAX_IDS} short tokens"},
                                status_code=400)
        if not ids:
            self._count("ignored")
            return JSONResponse({"accepted": 0, "reason": "no contact in this event"}, status_code=202)
        return self._hint(ids)

    def _hint(self, ids: list[str]) -> JSONResponse:
        taken = ids[:self.window.take(len(ids))]
        dropped = len(ids) - len(taken)
        if dropped:
            self._count("dropped", dropped)
            log.warning("crm_hints_dropped", dropped=dropped,
                        hint="more CRM events this minute than [crm] webhook_hints_per_minute: "
                             "the poll brings the rest")
        if not taken:
            return JSONResponse({"accepted": 0, "reason": "too many hints this minute; the poll "
                                 "brings them"}, status_code=202)
        new = self.hint(taken)
        self._count("hint", new)
        self._count("duplicate", len(taken) - new)
        log.info("crm_webhook_event", records=len(taken), new=new)
        return JSONResponse({"accepted": new}, status_code=202)
