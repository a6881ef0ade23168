"""The amoCRM/Kommo connector (API v4): contacts and calls.

Changed-since walk: ``GET /api/v4/contacts?filter[updated_at][from]=<unix>&order[updated_at]=asc
&limit=250``. Offset pages shift when a record is edited during the walk, so each request is
re-anchored on the last ``updated_at`` seen (page 1 again); ``page`` only advances inside a
run of 250+ records sharing one second. Ties are ordered by id on our side (Kommo leaves their
order unspecified), and a cut is made only after a later second has been seen, so equal
timestamps at page edges are neither lost nor repeated.

Quirk: on some accounts the ``updated_at`` filter is silently ignored. Every answer is checked
(``updated_at`` ≥ from); on the first violation a warning is logged once and the connector
falls back to scanning all contacts by id, keeping only the (updated_at, id) keys of changed
ones in memory and fetching each page's records by id.
"""

from __future__ import annotations

from dataclasses import replace

import math
from datetime import UTC, datetime
from typing import Any, ClassVar, Iterator
from urllib.parse import urlparse

import structlog
from pydantic import BaseModel, ConfigDict, Field, model_validator

from syncd.batches import chunks
from syncd.connector import Capabilities, ConnectorContext
from syncd.errors import AuthenticationError, InvalidRequest
from syncd.model import Call, Contact, ContactWrite, Cursor, Page, WriteResult
from syncd.phones import national_number, normalize_or_none, region_of

from .._secrets import secret_from as _secret
from .._webhooks import kommo_ids
from .._created import record_creates, settle_creates
from .._once import IntentLedger
from .._oauth import OAuthSession, TokenStore, token_pair_from_response
from ._api import KommoApi, check_response, rejected_request_ids
from ._calls import call_items, call_results, note_items
from ._records import to_contact, to_payload

__all__ = ["KommoConnector", "KommoOptions"]

log = structlog.get_logger()
PAGE = 250                          # the API's maximum page size
WRITE_CHUNK = 50                    # entities per write request (Kommo's advice)
DEFAULT_REQUESTS_PER_MINUTE = 420   # about 7 requests a second per integration
DEFAULT_BURST = 7
Key = tuple[int, int]               # (updated_at unix seconds, id)


class KommoOptions(BaseModel):
    """``[crm.options]`` of ``connector = "kommo"`` (or ``"amocrm"``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str                                  # https://<sub>.kommo.com or https://<sub>.amocrm.ru
    token: str | None = None                  # long-lived token
    token_file: str | None = None
    client_id: str | None = None              # OAuth2 integration
    client_secret: str | None = None
    client_secret_file: str | None = None
    refresh_token: str | None = None          # the first one; rotated ones live in state_dir
    refresh_token_file: str | None = None
    redirect_uri: str = "https://localhost/"
    call_source: str = "Oki-Toki"
    uniq_prefix: str = "oki-toki:"            # calls' uniq = prefix + session_id
    responsible_user_id: int | None = None    # calls are logged for this user ...
    agent_users: dict[str, int] = Field(default_factory=dict)  # ... or the agent's user
    phone_enum: str = "WORK"
    # Kommo signs no webhook: the webhook URL registered in Kommo carries this secret as
    # ?token=... (/events/crm?token=...); unset: the daemon refuses Kommo events (404).
    webhook_token: str | None = Field(None, min_length=16)
    webhook_token_file: str | None = None

    @model_validator(mode="after")
    def _one_auth(self) -> "KommoOptions":
        long_lived = bool(self.token or self.token_file)
        oauth = bool(self.client_id or self.refresh_token or self.refresh_token_file)
        if long_lived == oauth:
            raise ValueError("set either token (or token_file) or the OAuth keys client_id, "
                             "client_secret, refresh_token")
        if oauth and not (self.client_id and (self.client_secret or self.client_secret_file)
                          and (self.refresh_token or self.refresh_token_file)):
            raise ValueError("OAuth needs client_id, client_secret and refresh_token")
        return self


def _key(contact: Contact) -> Key:
    return (int(contact.updated_at.timestamp()) if contact.updated_at else 0, int(contact.id))


def _after_key(after: Cursor) -> Key:
    if after.updated_at is None:
        return (-1, -1)
    ts = after.updated_at.timestamp()
    if ts != int(ts):   # between two seconds: the whole next second is after it
        return (math.floor(ts), 2 ** 62)
    return (int(ts), int(after.last_id) if after.last_id and after.last_id.isdigit() else -1)


class KommoConnector:
    """amoCRM/Kommo contacts and calls; see the module docstring and docs/connectors/kommo.md."""

    name: ClassVar[str] = "kommo"
    Options: ClassVar[type[BaseModel]] = KommoOptions
    # What `syncd check` knows before connecting (do-not-call: a configured custom field).
    capabilities: Capabilities = Capabilities(calls_write=True, calls_update=True, do_not_call=True)
    # Defaults for [crm] requests_per_minute when the config has none.
    default_requests_per_minute: ClassVar[int] = DEFAULT_REQUESTS_PER_MINUTE
    default_burst: ClassVar[int] = DEFAULT_BURST

    def __init__(self, options: KommoOptions, context: ConnectorContext) -> None:
        self.options = options
        self.context = context
        self._webhook_token = _secret(options.webhook_token, options.webhook_token_file, "webhook_token")
        self.capabilities = Capabilities(
            calls_write=True, calls_update=True, do_not_call=bool(context.do_not_call_field),
            read_batch_size=PAGE,
            write_batch_size=WRITE_CHUNK, calls_batch_size=WRITE_CHUNK,
            deletes="verify_only", contacts_delete=False,   # API v4 cannot delete contacts
            notes=("if the account ignores filter[updated_at], every poll scans all contacts",))
        base = options.url.rstrip("/")
        token = _secret(options.token, options.token_file, "token")
        client_secret = _secret(options.client_secret, options.client_secret_file, "client_secret") or ""
        self.remote = context.remote(base_url=base, secrets=[s for s in (token, client_secret) if s],
                                     check=check_response, burst=DEFAULT_BURST)
        oauth = None
        if not token:
            def refresh(refresh_token: str):
                try:
                    response = self.remote.request(
                        "POST", "/oauth2/access_token", operation="kommo oauth refresh",
                        json={"client_id": options.client_id, "client_secret": client_secret,
                              "grant_type": "refresh_token", "refresh_token": refresh_token,
                              "redirect_uri": options.redirect_uri})
                except InvalidRequest as exc:   # 400 invalid_grant: the refresh token is dead
                    raise AuthenticationError(exc.message, system="crm", operation="kommo oauth refresh",
                                              status=exc.status,
                                              hint="the refresh token expired or was used elsewhere: "
                                                   "authorise the integration again and configure the "
                                                   "new refresh_token") from None
                return token_pair_from_response(response.json())

            oauth = OAuthSession(TokenStore.in_state_dir(context.state_dir, "kommo"),
                                 seed_refresh_token=_secret(options.refresh_token, options.refresh_token_file, "refresh_token"),
                                 refresh=refresh)
        self.api = KommoApi(self.remote, token=token, oauth=oauth)
        self.ledger = IntentLedger.in_state_dir(context.state_dir, "kommo-contacts")
        self.filter_ignored = False
        self._scan: list[Key] | None = None   # fallback walk: sorted keys of changed contacts
        self._scan_start: Key = (-1, -1)

    # -- reading -----------------------------------------------------------------------------
    def webhook_ids(self, request: Any) -> list[str] | None:
        """Contact ids a Kommo webhook names (see :mod:`syncd.crm_events`)."""
        host = urlparse(self.options.url).hostname or ""
        # <sub>.kommo.com / <sub>.amocrm.ru; an address (a proxy, a test) names no account
        subdomain = host.split(".")[0] if host.count(".") >= 2 and not host.replace(".", "").isdigit() else None
        return kommo_ids(request, self._webhook_token, subdomain)

    def health_check(self) -> None:
        """``GET /api/v4/account``: the cheapest authenticated call."""
        self.api.json("GET", "/api/v4/account", operation="kommo account")

    def _rows(self, params: dict[str, Any], operation: str) -> tuple[list[dict[str, Any]], bool]:
        body = self.api.json("GET", "/api/v4/contacts", operation=operation, params=params)
        rows = list((body.get("_embedded") or {}).get("contacts") or [])
        return rows, bool((body.get("_links") or {}).get("next"))

    def _contacts(self, rows: list[dict[str, Any]]) -> list[Contact]:
        return [to_contact(r, self.context.field_names, self.context.do_not_call_field) for r in rows]

    def changed_contacts(self, after: Cursor, limit: int) -> Page:
        """Contacts changed strictly after ``after`` in (updated_at, id) order, ≤ ``limit``."""
        if not self.filter_ignored:
            page = self._filtered_walk(after, limit)
            if page is not None:
                return page
        return self._fallback_walk(after, limit)

    def _filtered_walk(self, after: Cursor, limit: int) -> Page | None:
        start = _after_key(after)
        anchor, page_no = max(start[0], 0), 1
        found: dict[int, Contact] = {}
        exhausted = False
        while True:
            params = {"order[updated_at]": "asc", "limit": PAGE, "page": page_no}
            if anchor > 0:
                params["filter[updated_at][from]"] = anchor
            rows, has_next = self._rows(params, "kommo contacts changed")
            stamps = [int(r.get("updated_at") or 0) for r in rows]
            unordered = any(a > b for a, b in zip(stamps, stamps[1:]))
            if unordered or (anchor > 0 and any(t < anchor for t in stamps)):
                self.filter_ignored = True
                log.warning("kommo.updated_at_filter_ignored",
                            detail="the account ignores filter[updated_at] or order[updated_at]; "
                                   "scanning all contacts on every poll instead (more requests)")
                return None
            for c in self._contacts(rows):
                if _key(c) > start:
                    found[int(c.id)] = c
            if not rows or not has_next:
                exhausted = True
                break
            last = int(rows[-1].get("updated_at") or 0)
            ordered = sorted(found.values(), key=_key)
            if len(ordered) >= limit and last > _key(ordered[limit - 1])[0]:
                break   # every record up to the cut's second is in hand
            if last == anchor:
                page_no += 1          # a run of 250+ equal seconds: step through it by page
            else:
                anchor, page_no = last, 1
        ordered = sorted(found.values(), key=_key)
        taken = ordered[:limit]
        more = len(ordered) > limit or not exhausted
        return Page(taken, Cursor(taken[-1].updated_at, taken[-1].id) if taken else after, more)

    def _fallback_walk(self, after: Cursor, limit: int) -> Page:
        start = _after_key(after)
        if self._scan is None or start < self._scan_start:
            self._scan_start = start
            self._scan = sorted(k for k in self._all_keys() if k > start)
        pending = [k for k in self._scan if k > start]
        chunk = pending[:limit]
        by_id = {int(c.id): c for c in self.fetch_contacts([str(i) for _, i in chunk])}
        taken = [by_id[i] for _, i in chunk if i in by_id]
        more = len(pending) > limit
        if not more:
            self._scan = None   # the next poll scans afresh
        last = chunk[-1] if chunk else None
        cursor = Cursor(datetime.fromtimestamp(last[0], UTC), str(last[1])) if last else after
        return Page(taken, cursor, more)

    def _all_keys(self) -> Iterator[Key]:
        page_no = 1
        while True:   # by id: edits during the scan do not move records between pages
            rows, has_next = self._rows({"order[id]": "asc", "limit": PAGE, "page": page_no},
                                        "kommo contacts scan")
            for r in rows:
                yield (int(r.get("updated_at") or 0), int(r["id"]))
            if not rows or not has_next:
                return
            page_no += 1

    def fetch_contacts(self, ids: list[str]) -> list[Contact]:
        """The contacts with these ids (250 per request); unknown ids are absent."""
        return self._contacts(self._rows_by_id([int(i) for i in ids if str(i).isdigit()]))

    def _rows_by_id(self, ids: list[int]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for chunk in chunks(ids, PAGE):
            params = [("filter[id][]", str(x)) for x in chunk] + [("limit", str(PAGE))]
            rows += self._rows(params, "kommo contacts by id")[0]   # type: ignore[arg-type]
        return rows

    def find_by_phone(self, phone_e164: str) -> list[Contact]:
        """``query=<national number>`` (Kommo's fuzzy search), then verified exactly."""
        region, national = region_of(phone_e164), national_number(phone_e164)
        if region is None or national is None:
            return []
        rows, _ = self._rows({"query": national, "limit": PAGE}, "kommo contacts by phone")
        return [c for c in self._contacts(rows)
                if any(normalize_or_none(p, region) == phone_e164 for p in c.phones)]

    # -- writing -----------------------------------------------------------------------------
    def upsert_contacts(self, writes: list[ContactWrite]) -> list[WriteResult]:
        """``POST`` creates and ``PATCH`` updates as arrays of ≤ 50; an entity Kommo refuses
        fails alone (the rest is sent again without it). One result per write, in order."""
        results = settle_creates(self.ledger, [(i, w) for i, w in enumerate(writes) if w.id is None],
                                 self.find_by_phone)
        phone_ids = [int(w.id) for w in writes if w.id and str(w.id).isdigit() and w.phones is not None]
        existing = {r["id"]: r for r in self._rows_by_id(phone_ids)} if phone_ids else {}
        creates, updates = {}, {}
        for i, w in enumerate(writes):
            if i in results:
                continue
            if w.id is not None and not str(w.id).isdigit():
                results[i] = WriteResult(w.key, False, w.id, error=f"not a Kommo contact id: {w.id!r}")
                continue
            item = to_payload(w, str(i), existing.get(int(w.id)) if w.id else None,
                              self.context.do_not_call_field, self.options.phone_enum)
            (updates if w.id else creates)[str(i)] = item
        for method, items in (("POST", creates), ("PATCH", updates)):
            for part in chunks(list(items), WRITE_CHUNK):
                chunk = {k: items[k] for k in part}
                for rid, outcome in self._write(method, chunk).items():
                    w = writes[int(rid)]
                    results[int(rid)] = (WriteResult(w.key, True, str(outcome)) if isinstance(outcome, int)
                                         else WriteResult(w.key, False, w.id, error=outcome))
        record_creates(self.ledger, [results[int(rid)] for rid in creates])
        return [results[i] for i in range(len(writes))]

    def _write(self, method: str, items: dict[str, dict[str, Any]]) -> dict[str, int | str]:
        """request_id → id, or → the reason Kommo refused that entity."""
        out: dict[str, int | str] = {}
        while items:
            try:
                body = self.api.json(method, "/api/v4/contacts", operation=f"kommo contacts {method}",
                                     json=list(items.values()), idempotent=method != "POST")
            except InvalidRequest as exc:
                rejected = rejected_request_ids(exc)
                if not rejected or not set(rejected) & set(items):
                    out.update({rid: str(exc) for rid in items})
                    return out
                for rid, reason in rejected.items():
                    if rid in items:
                        out[rid] = reason
                        del items[rid]
                continue
            for row in (body.get("_embedded") or {}).get("contacts") or []:
                out[str(row.get("request_id"))] = int(row["id"])
            for rid in items:
                out.setdefault(rid, "Kommo returned no id for this entity")
            return out
        return out

    def log_calls(self, calls: list[Call]) -> list[WriteResult]:
        """``POST /api/v4/calls`` in arrays of ≤ 50; ``uniq`` = prefix + session_id guards repeats."""
        results: list[WriteResult] = []
        for chunk in chunks(calls, WRITE_CHUNK):
            results += self._log_chunk(chunk)
        return results

    def _as_stored(self, calls: list[Call]) -> list[Call]:
        """Kommo attaches a call to the contact holding exactly its number: send the number as
        the linked contact stores it ("0671115566", not Oki-Toki's "380671115566")."""
        ids = sorted({c.contact_id for c in calls if c.contact_id})
        if not ids:
            return calls
        region = self.context.default_region or "UA"

        def e164(raw: str) -> str | None:
            return normalize_or_none(raw, region)
        stored = {c.id: c.phones for c in self.fetch_contacts(ids)}
        out = []
        for call in calls:
            want = e164(call.phone)
            match = next((p for p in stored.get(call.contact_id or "", ()) if want and e164(p) == want), None)
            out.append(replace(call, phone=match) if match else call)
        return out

    def _log_chunk(self, calls: list[Call]) -> list[WriteResult]:
        items = call_items(self._as_stored(calls), self.options)
        try:
            body = self.api.json("POST", "/api/v4/calls", operation="kommo calls", json=items)
            rejected: dict[str, str] = {}
        except InvalidRequest as exc:
            rejected = rejected_request_ids(exc)
            if not rejected:
                raise
            keep = [item for item in items if item["request_id"] not in rejected]
            body = self.api.json("POST", "/api/v4/calls", operation="kommo calls", json=keep) if keep else {}
        return call_results(calls, body, rejected)

    def update_calls(self, calls: list[Call], activity_ids: dict[str, str]) -> list[WriteResult]:
        """Rewrite the call notes of logged calls (``PATCH /api/v4/contacts/notes``). A call
        whose note id is not known is logged again first: ``uniq`` answers the existing note."""
        given, calls = calls, list({c.session_id: c for c in calls}.values())
        ids = {sid: str(i) for sid, i in activity_ids.items()}
        unknown = [c for c in calls if not ids.get(c.session_id)]
        failed: dict[str, WriteResult] = {}
        for res in (self.log_calls(unknown) if unknown else []):
            if res.ok and res.id:
                ids[res.key] = res.id
            else:
                failed[res.key] = res
        ready = [c for c in calls if c.session_id not in failed]
        done: dict[str, WriteResult] = {}
        for chunk in chunks(ready, WRITE_CHUNK):
            items = note_items(self._as_stored(chunk), ids, self.options)
            try:
                body = self.api.json("PATCH", "/api/v4/contacts/notes", operation="kommo edit call notes",
                                     json=items)
            except InvalidRequest as exc:
                rejected = rejected_request_ids(exc)
                if not rejected:
                    raise
                done.update({sid: WriteResult(sid, False, error=why) for sid, why in rejected.items()})
                keep = [i for i in items if i["request_id"] not in rejected]
                body = self.api.json("PATCH", "/api/v4/contacts/notes", operation="kommo edit call notes",
                                     json=keep) if keep else {}
            for row in (body.get("_embedded") or {}).get("notes") or []:
                sid = str(row.get("request_id"))
                done[sid] = WriteResult(sid, True, str(row.get("id")))
        return [failed.get(c.session_id) or done.get(c.session_id) or WriteResult(
            c.session_id, False, error="Kommo returned nothing for this note", retriable=True)
            for c in given]

    def close(self) -> None:
        self.ledger.close()
        self.remote.close()
