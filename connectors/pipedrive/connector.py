"""The Pipedrive connector class (see the package docstring for the vendor quirks it handles)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import structlog
from pydantic import BaseModel

from syncd.batches import chunks
from syncd.connector import Capabilities, ConnectorContext
from syncd.errors import InvalidRequest, NotFound, TransientError
from syncd.model import Call, Contact, ContactWrite, Cursor, Page, WriteResult
from syncd.phones import normalize_or_none

from .._clock import parse_time
from .._oauth import TokenOrOAuthConnector, TokenPair, token_pair_from_response
from .._once import proven_done
from .._webhooks import pipedrive_ids
from ._api import PAGE, TOP_LEVEL, PipedriveOptions, check_response
from ._calls import call_log_request, marker

__all__ = ["PipedriveConnector"]

log = structlog.get_logger()


class PipedriveConnector(TokenOrOAuthConnector):
    """Pipedrive (persons v2, call logs v1). See the module docstring for its quirks."""

    name: ClassVar[str] = "pipedrive"
    page_size: int = PAGE
    Options: ClassVar[type[BaseModel]] = PipedriveOptions
    # Defaults for [crm] requests_per_minute / daily_request_budget when the config has none.
    default_requests_per_minute: ClassVar[int] = 300   # search: 10 per 2 s; Essential: 20 per 2 s
    default_burst: ClassVar[int] = 10
    default_daily_request_budget: ClassVar[int] = 1_500
    # Class-level so `syncd check` sees it; do-not-call goes to a custom field you create.
    capabilities: ClassVar[Capabilities] = Capabilities(
        calls_write=True, do_not_call=True, read_batch_size=100, write_batch_size=50,
        calls_batch_size=50, change_overlap=timedelta(seconds=10), deletes="verify_only",
        contacts_delete=True,
        notes=("every request spends the company's daily token budget (list 10-20, write 5-10, "
               "call-log add 10): set crm.daily_request_budget to your plan's share",
               "recordings are linked in the call note, not uploaded",
               "a call log cannot be changed once added (the API has no update for call logs): "
               "a recording link or outcome Oki-Toki fills in later does not reach Pipedrive"))  # ≈ 30,000 base tokens / ~20 per request

    def __init__(self, options: PipedriveOptions, context: ConnectorContext) -> None:
        super().__init__(
            options, context, "pipedrive", check=check_response,
            secrets=[options.api_token, options.client_secret, options.refresh_token, options.webhook_password],
            static_headers={"x-api-token": options.api_token} if options.api_token else {})
        self.calls_ledger = self._ledger("pipedrive-calls")
        self.creates_ledger = self._ledger("pipedrive-creates")
    # -- plumbing ------------------------------------------------------------------------
    def _refresh(self, refresh_token: str) -> TokenPair:
        response = self.remote.request(
            "POST", self.options.oauth_url.rstrip("/") + "/oauth/token", operation="oauth refresh",
            auth=(self.options.client_id or "", self.options.client_secret or ""),
            data={"grant_type": "refresh_token", "refresh_token": refresh_token})
        return token_pair_from_response(response.json())

    def _contact(self, p: dict[str, Any]) -> Contact:
        custom = p.get("custom_fields") or {}
        fields: dict[str, Any] = {}
        for name in self.context.field_names:
            if name == "email":
                emails = p.get("emails") or []
                primary = next((e for e in emails if e.get("primary")), emails[0] if emails else None)
                fields[name] = primary.get("value") if primary else None
            else:
                fields[name] = p[name] if name in p else custom.get(name)
        if self.dnc:
            value = p[self.dnc] if self.dnc in p else custom.get(self.dnc)
            fields[self.dnc] = value is not None and str(value) == self.options.do_not_call_value
        phones = tuple(ph["value"] for ph in sorted(p.get("phones") or [], key=lambda x: not x.get("primary"))
                       if ph.get("value"))
        return Contact(id=str(p["id"]), fields=fields, phones=phones,
                       updated_at=parse_time(p["update_time"]) if p.get("update_time") else None)

    def _list(self, params: dict[str, Any], operation: str) -> tuple[list[dict[str, Any]], str | None]:
        body = self._call("GET", "/api/v2/persons", operation, params=params).json()
        return body.get("data") or [], (body.get("additional_data") or {}).get("next_cursor")

    # -- protocol ------------------------------------------------------------------------
    def webhook_ids(self, request: Any) -> list[str] | None:
        """Person ids a Pipedrive webhook names (see :mod:`syncd.crm_events`)."""
        return pipedrive_ids(request, self.options.webhook_user, self.options.webhook_password)

    def health_check(self) -> None:
        self._call("GET", "/v1/users/me", "health check")

    def changed_contacts(self, after: Cursor, limit: int) -> Page:
        """Persons changed strictly after ``after`` in (update_time, id) order; see module doc."""
        def key(c: Contact) -> tuple[datetime, int]:
            return (c.updated_at or datetime.min.replace(tzinfo=UTC), int(c.id))
        floor = (after.updated_at, int(after.last_id or 0)) if after.updated_at else None
        params: dict[str, Any] = {"sort_by": "update_time", "sort_direction": "asc", "limit": self.page_size}
        if after.updated_at:
            params["updated_since"] = after.updated_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        kept: list[Contact] = []
        exhausted = False
        while True:
            rows, cursor = self._list(params, "list changed persons")
            batch = [self._contact(p) for p in rows]
            if self.options.settle_s > 0:
                # A second still running can gain changes; the engine's cursor is strict, so
                # persons of too recent seconds wait for the next poll (the walk ends there).
                cutoff = self.server_clock.now - timedelta(seconds=self.options.settle_s)
                settled = [c for c in batch if c.updated_at is None or c.updated_at <= cutoff]
                if len(settled) < len(batch):
                    batch, cursor = settled, None
            kept = sorted(kept + [c for c in batch if floor is None or key(c) > floor], key=key)[:limit + 1]
            if not cursor:
                exhausted = True
                break
            last_seen = batch[-1].updated_at if batch else None
            # Everyone up to the limit-th kept person's second has been seen: the cut is exact.
            if len(kept) >= limit and last_seen is not None and kept[limit - 1].updated_at < last_seen:
                break
            params["cursor"] = cursor
        page = kept[:limit]
        nxt = Cursor(page[-1].updated_at, page[-1].id) if page else after
        return Page(page, nxt, more=not exhausted or len(kept) > limit)

    def fetch_contacts(self, ids: list[str]) -> list[Contact]:
        out: list[Contact] = []
        wanted = [i for i in ids if i.isdigit()]
        for chunk in chunks(wanted, 100):
            rows, _ = self._list({"ids": ",".join(chunk), "limit": 100}, "read persons")
            out += [self._contact(p) for p in rows]
        return out

    def find_by_phone(self, phone_e164: str) -> list[Contact]:
        """Persons holding exactly this number (search by its last 9 digits, then verified)."""
        term = "".join(ch for ch in phone_e164 if ch.isdigit())[-9:]
        body = self._call("GET", "/api/v2/persons/search", "search persons by phone",
                          params={"term": term, "fields": "phone", "limit": 100}).json()
        ids = [str(i["item"]["id"]) for i in (body.get("data") or {}).get("items", [])]
        return [c for c in self.fetch_contacts(ids) if phone_e164 in {self._normal(p) for p in c.phones}]

    def _normal(self, phone: str) -> str | None:
        return normalize_or_none(phone, self.region)

    # -- contact writes ------------------------------------------------------------------
    def _body(self, w: ContactWrite) -> dict[str, Any]:
        body: dict[str, Any] = {}
        custom: dict[str, Any] = {}
        for name, value in w.fields.items():
            if name == self.dnc:
                value = self.options.do_not_call_value if value else None
            if name == "email":
                body["emails"] = [{"value": value, "primary": True, "label": "work"}] if value else []
            elif name in TOP_LEVEL:
                body[name] = value
            else:
                custom[name] = value
        if custom:
            body["custom_fields"] = custom
        if w.phones is not None:
            unique: dict[str, str] = {}
            for phone in w.phones:
                unique.setdefault(self._normal(phone) or phone.strip(), phone)
            body["phones"] = [{"value": p, "primary": i == 0, "label": self.options.phone_label}
                              for i, p in enumerate(unique.values())]
        return body

    def upsert_contacts(self, writes: list[ContactWrite]) -> list[WriteResult]:
        """One request per person (Pipedrive has no batch write); results in input order."""
        return [self._upsert(w) for w in writes]

    def _upsert(self, w: ContactWrite) -> WriteResult:
        body = self._body(w)
        target = w.id
        if target is None:
            body.setdefault("name", self._name_for(w))
            intent = self.creates_ledger.get(w.key)
            if intent and intent.remote_id:
                target = intent.remote_id
            elif intent:
                target = self._made_by_lost_attempt(body, intent.sent_at)
        try:
            if target is not None:
                response = self._call("PATCH", f"/api/v2/persons/{target}", "update person", json=body)
            else:
                self.creates_ledger.sending(w.key)
                response = self._call("POST", "/api/v2/persons", "create person", idempotent=False, json=body)
        except (InvalidRequest, NotFound) as exc:
            if w.id is None and target is None:
                self.creates_ledger.forget(w.key)
            return WriteResult(w.key, False, w.id, error=exc.message, retriable=False)
        except TransientError as exc:
            return WriteResult(w.key, False, w.id, retriable=True,
                               error=f"outcome unknown ({exc.message}); will look it up first")
        pid = str(response.json()["data"]["id"])
        if w.id is None:
            self.creates_ledger.confirmed(w.key, pid)
        return WriteResult(w.key, True, pid)

    def delete_contacts(self, ids: list[str]) -> list[WriteResult]:
        """Delete persons, one request each (Pipedrive keeps them 30 days, then purges). A
        person already gone (404) counts as deleted, so a retry is harmless."""
        results = []
        for pid in ids:
            try:
                self._call("DELETE", f"/api/v2/persons/{pid}", "delete person")
                results.append(WriteResult(pid, True, pid))
            except NotFound:
                results.append(WriteResult(pid, True, pid))
            except InvalidRequest as exc:
                results.append(WriteResult(pid, False, pid, error=exc.message))
        return results

    def _made_by_lost_attempt(self, body: dict[str, Any], sent_at: datetime) -> str | None:
        """The person an unconfirmed create made (None: it was not made).

        Looked for among the newest persons (one list request, no search index involved):
        added since shortly before the attempt, with the same name and the same numbers.
        """
        rows, _ = self._list({"sort_by": "add_time", "sort_direction": "desc", "limit": 100},
                             "list newest persons")
        since = sent_at - timedelta(minutes=5)
        numbers = {self._normal(p["value"]) or p["value"] for p in body.get("phones") or []}
        for row in rows:
            if row.get("add_time") and parse_time(row["add_time"]) < since:
                break
            have = {self._normal(p["value"]) or p["value"] for p in row.get("phones") or []}
            if row.get("name") == body.get("name") and (not numbers or have == numbers):
                log.info("pipedrive.create_recovered", person=row["id"])
                return str(row["id"])
        return None

    @staticmethod
    def _name_for(w: ContactWrite) -> str:
        parts = [str(w.fields[k]) for k in ("first_name", "last_name") if w.fields.get(k)]
        return " ".join(parts) or (w.phones[0] if w.phones else "") or "Unknown (Oki-Toki)"

    # -- calls ---------------------------------------------------------------------------
    def log_calls(self, calls: list[Call]) -> list[WriteResult]:
        """One call log per ``session_id`` (exactly once, even after a lost answer)."""
        unsure = {c.session_id for c in calls
                  if (i := self.calls_ledger.get(c.session_id)) is not None and i.remote_id is None}
        found = self._find_call_logs(unsure) if unsure else {}
        results = []
        for call in calls:
            if (done := proven_done(self.calls_ledger, call.session_id, found)) is not None:
                results.append(done)
            else:
                results.append(self._add_call(call))
        return results

    def _find_call_logs(self, session_ids: set[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for page in range(self.options.call_lookup_pages):
            body = self._call("GET", "/v1/callLogs", "list call logs",
                              params={"start": page * 50, "limit": 50}).json()
            for entry in body.get("data") or []:
                for sid in session_ids:
                    if marker(sid) in (entry.get("note") or ""):
                        found[sid] = str(entry["id"])
            more = ((body.get("additional_data") or {}).get("pagination") or {}).get("more_items_in_collection")
            if not more or len(found) == len(session_ids):
                break
        return found

    def _add_call(self, call: Call) -> WriteResult:
        try:
            body = call_log_request(call, self.options.user_id)
        except ValueError as exc:
            return WriteResult(call.session_id, False, error=str(exc), retriable=False)
        self.calls_ledger.sending(call.session_id)
        try:
            response = self._call("POST", "/v1/callLogs", "log call", idempotent=False, json=body)
        except (InvalidRequest, NotFound) as exc:
            self.calls_ledger.forget(call.session_id)
            return WriteResult(call.session_id, False, error=exc.message, retriable=False)
        except TransientError as exc:
            return WriteResult(call.session_id, False, retriable=True,
                               error=f"outcome unknown ({exc.message}); will look it up first")
        remote_id = str(response.json()["data"]["id"])
        self.calls_ledger.confirmed(call.session_id, remote_id)
        return WriteResult(call.session_id, True, remote_id)

    def close(self) -> None:
        self.remote.close()
        self.calls_ledger.close()
        self.creates_ledger.close()
