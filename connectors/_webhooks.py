"""How each vendor's contact webhooks authenticate and name records (``webhook_ids``).

Every function takes a :class:`syncd.crm_events.WebhookRequest` and follows its contract:
called first without the body (raise ``WebhookRefused`` if what lies outside the body already
fails, return None to ask for the body), then with it (return the contact ids, ``[]`` for an
event about something else; ValueError for a malformed body). Secrets are compared in
constant time and never appear in an error.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any, Callable
from urllib.parse import unquote

from syncd.crm_events import WebhookOff, WebhookRefused, WebhookRequest
from syncd.webhooks import parse_body, parse_json

__all__ = ["bitrix24_ids", "hubspot_ids", "pipedrive_ids", "kommo_ids", "hubspot_signature",
           "HUBSPOT_WINDOW_MS"]

HUBSPOT_WINDOW_MS = 5 * 60 * 1000     # HubSpot: reject a request timestamp older than 5 minutes
BITRIX_EVENTS = {"ONCRMCONTACTADD", "ONCRMCONTACTUPDATE", "ONCRMCONTACTDELETE"}


def _same(given: str | None, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(str(given).encode(), expected.encode())


def _need(secret: str | None, key: str) -> str:
    if not secret:
        raise WebhookOff(f"CRM webhooks are off: set crm.options.{key}")
    return secret


def bitrix24_ids(req: WebhookRequest, application_token: str | None) -> list[str] | None:
    """Bitrix24 outbound events (form-encoded ``event=ONCRMCONTACTUPDATE&data[FIELDS][ID]=7&
    auth[application_token]=...``): the token is in the body."""
    token = _need(application_token, "application_token")
    if req.body is None:
        return None
    form = parse_body(req.body, req.headers.get("content-type", "application/x-www-form-urlencoded"))
    if not _same(form.get("auth[application_token]"), token):
        raise WebhookRefused()
    if str(form.get("event") or "").upper() not in BITRIX_EVENTS:
        return []
    rid = str(form.get("data[FIELDS][ID]") or "").strip()
    if not rid.isdigit():
        raise ValueError("data[FIELDS][ID] is not a record id")
    return [rid]


def hubspot_signature(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """HubSpot signature v3: base64(HMAC-SHA256(secret, method + uri + body + timestamp)),
    over the URI with its percent-encoded characters decoded, as HubSpot signs it."""
    message = method.upper().encode() + unquote(uri).encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def hubspot_ids(req: WebhookRequest, secret: str | None, public_url: str | None = None,
                now_ms: Callable[[], float] = lambda: time.time() * 1000) -> list[str] | None:
    """HubSpot webhooks (a JSON array of ``{objectId, subscriptionType: "contact.*"}``),
    checked by ``X-HubSpot-Signature-v3`` and ``X-HubSpot-Request-Timestamp`` (5 minutes)."""
    secret = _need(secret, "webhook_secret")
    signature = req.headers.get("x-hubspot-signature-v3", "")
    stamp = req.headers.get("x-hubspot-request-timestamp", "")
    if not signature or not stamp.isdigit() or abs(now_ms() - int(stamp)) > HUBSPOT_WINDOW_MS:
        raise WebhookRefused()
    if req.body is None:
        return None
    uri = public_url or req.url
    if not _same(signature, hubspot_signature(secret, req.method, uri, req.body, stamp)):
        raise WebhookRefused()
    events = parse_json(req.body)
    if not isinstance(events, list):
        raise ValueError("a HubSpot webhook body is a JSON array")
    ids = []
    for event in events:
        if not isinstance(event, dict):
            raise ValueError("a HubSpot event is a JSON object")
        if str(event.get("subscriptionType") or "").startswith("contact.") and event.get("objectId") is not None:
            ids.append(str(event["objectId"]))
    return ids


def pipedrive_ids(req: WebhookRequest, user: str | None, password: str | None) -> list[str] | None:
    """Pipedrive webhooks (JSON; v2 ``meta.entity``/``meta.entity_id``, v1 ``meta.object``/
    ``meta.id``), checked by the HTTP basic auth set on the webhook."""
    password = _need(password, "webhook_password")
    given = req.headers.get("authorization", "")
    if not given.startswith("Basic "):
        raise WebhookRefused()
    try:
        name, _, secret = base64.b64decode(given[6:].strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        raise WebhookRefused() from None
    if (user and not _same(name, user)) or not _same(secret, password):
        raise WebhookRefused()
    if req.body is None:
        return None
    data = parse_json(req.body)
    meta: Any = data.get("meta") if isinstance(data, dict) else None
    if not isinstance(meta, dict):
        raise ValueError("a Pipedrive webhook has a meta object")
    entity = meta.get("entity") or meta.get("object")
    rid = meta.get("entity_id") if meta.get("entity") else meta.get("id")
    if entity != "person":
        return []
    if rid is None or not str(rid).isdigit():
        raise ValueError("meta names no person id")
    return [str(rid)]


def kommo_ids(req: WebhookRequest, token: str | None, subdomain: str | None) -> list[str] | None:
    """Kommo (amoCRM) webhooks (form-encoded ``contacts[update][0][id]=...``). Kommo signs
    nothing, so the webhook URL registered in Kommo carries a secret ``token`` parameter,
    checked before the body; an event of another account (``account[subdomain]``) is ignored."""
    token = _need(token, "webhook_token")
    if not _same(req.query.get("token"), token):
        raise WebhookRefused()
    if req.body is None:
        return None
    form = parse_body(req.body, req.headers.get("content-type", "application/x-www-form-urlencoded"))
    account = form.get("account[subdomain]")
    if subdomain and account and str(account).lower() != subdomain.lower():
        return []
    ids = []
    for key, value in form.items():
        parts = key.replace("]", "").split("[")
        if len(parts) == 4 and parts[0] == "contacts" and parts[1] in ("add", "update", "delete", "restore") \
                and parts[3] == "id":
            if not str(value).isdigit():
                raise ValueError(f"{key} is not a record id")
            ids.append(str(value))
    return ids
