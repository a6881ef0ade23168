"""The Bitrix24 connector: contacts (``crm.contact.*``) and calls (telephony or activities).

Changed-since walk (the protocol's strict (updated_at, id) order), without ``start`` counting:

1. the rest of the cursor's second: ``{"=DATE_MODIFY": t, ">ID": last_id}`` ordered by ID;
2. then later seconds: ``{">DATE_MODIFY": t}`` ordered by ``DATE_MODIFY, ID``;

both with ``start = -1`` (the documented fast mode: 50 rows, no ``total``), so a walk of any
size costs one request per 50 changes and equal timestamps at page edges are neither lost nor
repeated. ``DATE_MODIFY`` has one-second resolution and comes in the portal's zone; cursors are
UTC. Writes go through ``batch`` (≤ 50 commands); phones are changed in place by ``ID``.
"""

from __future__ import annotations

from datetime import UTC
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from syncd.batches import chunks
from syncd.connector import Capabilities, ConnectorContext
from syncd.errors import PermissionDenied
from syncd.model import Call, Contact, ContactWrite, Cursor, Page, WriteResult
from syncd.phones import normalize_or_none, region_of

from .._secrets import secret_from as _secret
from .._webhooks import bitrix24_ids
from .._created import record_creates, settle_creates
from .._once import IntentLedger
from .._oauth import OAuthSession, TokenStore, token_pair_from_response
from ._calls import CallLogger
from ._records import MULTI_FIELDS, bx_time, first_value_ops, from_flag, multi_ops, to_contact
from ._rest import BATCH_LIMIT, Bitrix24Rest, CommandError, check_response, webhook_parts

__all__ = ["Bitrix24Connector", "Bitrix24Options"]

DEFAULT_REQUESTS_PER_MINUTE = 120   # the portal's bucket drains 2 requests a second
DEFAULT_BURST = 50                  # ... after a burst of 50


class Bitrix24Options(BaseModel):
    """``[crm.options]`` of ``connector = "bitrix24"``: a webhook URL, or an OAuth2 app."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    webhook_url: str | None = None            # https://<portal>/rest/<user_id>/<secret>/
    webhook_url_file: str | None = None
    portal_url: str | None = None             # OAuth: https://<portal>.bitrix24.<tld>
    client_id: str | None = None
    client_secret: str | None = None
    client_secret_file: str | None = None
    refresh_token: str | None = None          # the first one; rotated ones live in state_dir
    refresh_token_file: str | None = None
    oauth_url: str = "https://oauth.bitrix.info"
    user_id: int = Field(1, ge=1)             # Bitrix24 user calls are logged for
    agent_users: dict[str, int] = Field(default_factory=dict)  # Oki-Toki agent → user ID
    calls: Literal["auto", "telephony", "activity"] = "auto"
    phone_type: str = "WORK"                  # VALUE_TYPE of phones the connector adds
    # Outbound events (ONCRMCONTACTADD/UPDATE/DELETE → /events/crm) carry this token as
    # auth[application_token]; unset: the daemon refuses Bitrix24 events (404).
    application_token: str | None = Field(None, min_length=8)
    application_token_file: str | None = None

    @model_validator(mode="after")
    def _one_auth(self) -> "Bitrix24Options":
        webhook = bool(self.webhook_url or self.webhook_url_file)
        oauth = bool(self.portal_url or self.client_id or self.refresh_token or self.refresh_token_file)
        if webhook == oauth:
            raise ValueError("set either webhook_url (or webhook_url_file) or the OAuth keys "
                             "portal_url, client_id, client_secret, refresh_token")
        if oauth and not (self.portal_url and self.client_id
                          and (self.client_secret or self.client_secret_file)
                          and (self.refresh_token or self.refresh_token_file)):
            raise ValueError("OAuth needs portal_url, client_id, client_secret and refresh_token")
        return self


class Bitrix24Connector:
    """Bitrix24 contacts and calls; see the module docstring and docs/connectors/bitrix24.md."""

    name: ClassVar[str] = "bitrix24"
    Options: ClassVar[type[BaseModel]] = Bitrix24Options
    # What `syncd check` knows before connecting (do-not-call: a configured UF_CRM_* field).
    capabilities: Capabilities = Capabilities(calls_write=True, calls_update=True, do_not_call=True,
                                              contacts_delete=True)
    # Defaults for [crm] requests_per_minute when the config has none.
    default_requests_per_minute: ClassVar[int] = DEFAULT_REQUESTS_PER_MINUTE
    default_burst: ClassVar[int] = DEFAULT_BURST

    def __init__(self, options: Bitrix24Options, context: ConnectorContext) -> None:
        self.options = options
        self.context = context
        self._application_token = _secret(options.application_token, options.application_token_file,
                                          "application_token")
        self.capabilities = Capabilities(
            calls_write=True, calls_update=True, do_not_call=bool(context.do_not_call_field),
            read_batch_size=BATCH_LIMIT, write_batch_size=BATCH_LIMIT, calls_batch_size=BATCH_LIMIT,
            deletes="verify_only", contacts_delete=True,
            notes=("one request per 50 changed contacts; writes and calls go through batch",))
        # The rate itself comes from [crm] requests_per_minute (default_requests_per_minute when
        # unset); the burst is the portal's bucket size.
        limits = dict(burst=DEFAULT_BURST)
        self._remotes = []
        if options.webhook_url or options.webhook_url_file:
            url, secret = webhook_parts(_secret(options.webhook_url, options.webhook_url_file, "webhook_url") or "")
            remote = context.remote(base_url=url, secrets=[secret, url], check=check_response, **limits)
            self._remotes.append(remote)
            self.rest = Bitrix24Rest(remote)
        else:
            client_secret = _secret(options.client_secret, options.client_secret_file, "client_secret") or ""
            oauth_remote = context.remote(base_url=options.oauth_url, secrets=[client_secret],
                                          check=check_response, **limits)
            remote = context.remote(base_url=options.portal_url.rstrip("/") + "/rest/",
                                    secrets=[client_secret], check=check_response, **limits)
            self._remotes += [oauth_remote, remote]

            def refresh(refresh_token: str):
                response = oauth_remote.request("GET", "/oauth/token/", operation="bitrix24 oauth refresh",
                                                params={"grant_type": "refresh_token",
                                                        "client_id": options.client_id,
                                                        "client_secret": client_secret,
                                                        "refresh_token": refresh_token})
                return token_pair_from_response(response.json())

            session = OAuthSession(TokenStore.in_state_dir(context.state_dir, "bitrix24"),
                                   seed_refresh_token=_secret(options.refresh_token, options.refresh_token_file, "refresh_token"),
                                   refresh=refresh)
            self.rest = Bitrix24Rest(remote, session)
        self.ledger = IntentLedger.in_state_dir(context.state_dir, "bitrix24-contacts")
        self.calls = CallLogger(self.rest, user_id=options.user_id, agent_users=options.agent_users,
                                mode=options.calls)

    # -- reading -----------------------------------------------------------------------------
    @property
    def _select(self) -> list[str]:
        names = ["ID", "DATE_MODIFY", "PHONE", *self.context.field_names]
        if self.context.do_not_call_field:
            names.append(self.context.do_not_call_field)
        return list(dict.fromkeys(names))

    def _contacts(self, rows: list[dict[str, Any]]) -> list[Contact]:
        return [to_contact(r, self.context.field_names, self.context.do_not_call_field) for r in rows]

    def _list(self, flt: dict[str, Any], order: dict[str, str]) -> list[dict[str, Any]]:
        answer = self.rest.call("crm.contact.list", {"filter": flt, "order": order,
                                                     "select": self._select, "start": -1})
        return list(answer["result"] or [])

    def webhook_ids(self, request: Any) -> list[str] | None:
        """Contact ids an outbound event names (see :mod:`syncd.crm_events`)."""
        return bitrix24_ids(request, self._application_token)

    def health_check(self) -> None:
        """``scope``: the cheapest authenticated call; the crm scope must be granted."""
        scopes = self.rest.call("scope")["result"]
        if isinstance(scopes, list) and "crm" not in scopes:
            raise PermissionDenied("the crm scope is not granted", system="crm", operation="bitrix24 scope",
                                   hint="add the crm scope to the webhook or the app")

    def _next_rows(self, after: Cursor) -> tuple[list[dict[str, Any]], bool]:
        """Rows strictly after ``after`` (one or two requests); bool: more may follow."""
        by_time = {"DATE_MODIFY": "ASC", "ID": "ASC"}
        if after.updated_at is None:
            rows = self._list({}, by_time)
            return rows, len(rows) >= BATCH_LIMIT
        t = after.updated_at.astimezone(UTC)
        if t.microsecond:   # between two seconds: everything from the next second is after it
            rows = self._list({">DATE_MODIFY": bx_time(t)}, by_time)
            return rows, len(rows) >= BATCH_LIMIT
        if after.last_id is None:
            rows = self._list({">=DATE_MODIFY": bx_time(t)}, by_time)
            return rows, len(rows) >= BATCH_LIMIT
        same = self._list({"=DATE_MODIFY": bx_time(t), ">ID": int(after.last_id)}, {"ID": "ASC"})
        if len(same) >= BATCH_LIMIT:
            return same, True
        later = self._list({">DATE_MODIFY": bx_time(t)}, by_time)
        return same + later, len(later) >= BATCH_LIMIT

    def changed_contacts(self, after: Cursor, limit: int) -> Page:
        """Contacts changed strictly after ``after`` in (DATE_MODIFY, ID) order, ≤ ``limit``."""
        out: list[Contact] = []
        cursor = after
        more = True
        while more and len(out) < limit:
            rows, more = self._next_rows(cursor)
            contacts = self._contacts(rows)
            taken = contacts[:limit - len(out)]
            out += taken
            if taken:
                cursor = Cursor(taken[-1].updated_at, taken[-1].id)
            if len(taken) < len(contacts):
                return Page(out, cursor, True)
            if not taken:
                more = False
        return Page(out, cursor, more)

    def fetch_contacts(self, ids: list[str]) -> list[Contact]:
        """The contacts with these IDs (50 per request); unknown IDs are absent."""
        return self._contacts(self._rows_by_id([int(i) for i in ids if str(i).isdigit()]))

    def _rows_by_id(self, ids: list[int]) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        for chunk in chunks(ids, BATCH_LIMIT):
            rows += self._list({"@ID": chunk}, {"ID": "ASC"})
        return rows

    def find_by_phone(self, phone_e164: str) -> list[Contact]:
        """``crm.duplicate.findbycomm`` (Bitrix24's normalised phone index), then verified."""
        region = region_of(phone_e164)
        if region is None:
            return []
        found = self.rest.call("crm.duplicate.findbycomm",
                               {"entity_type": "CONTACT", "type": "PHONE", "values": [phone_e164]})["result"]
        ids = found.get("CONTACT", []) if isinstance(found, dict) else []

        return [c for c in self.fetch_contacts([str(i) for i in ids])
                if any(normalize_or_none(p, region) == phone_e164 for p in c.phones)]

    # -- writing -----------------------------------------------------------------------------
    def _fields(self, write: ContactWrite, existing: dict[str, Any] | None) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for name, value in write.fields.items():
            if name == "PHONE":
                continue   # phones only through write.phones (changed in place, never appended)
            if name == self.context.do_not_call_field:
                fields[name] = from_flag(value)
            elif name in MULTI_FIELDS and name != "PHONE":
                ops = first_value_ops((existing or {}).get(name) or [], value)
                if ops:
                    fields[name] = ops
            else:
                fields[name] = value
        if write.phones is not None:
            ops = multi_ops((existing or {}).get("PHONE") or [], write.phones, self.options.phone_type)
            if ops:
                fields["PHONE"] = ops
        return fields

    def upsert_contacts(self, writes: list[ContactWrite]) -> list[WriteResult]:
        """Create/update through ``batch``; existing multi-value entries are read first so
        phones and e-mails change in place. One result per write, in order."""
        needs_existing = [int(w.id) for w in writes
                          if w.id and str(w.id).isdigit()
                          and (w.phones is not None or any(f in MULTI_FIELDS for f in w.fields))]
        existing = {str(r["ID"]): r for r in self._rows_by_id(needs_existing)} if needs_existing else {}
        results = settle_creates(self.ledger, [(i, w) for i, w in enumerate(writes) if w.id is None],
                                 self.find_by_phone)
        commands = []
        for i, w in enumerate(writes):
            if i in results:
                continue
            if w.id is not None and not str(w.id).isdigit():
                results[i] = WriteResult(w.key, False, w.id, error=f"not a Bitrix24 contact ID: {w.id!r}")
                continue
            if w.id is not None and needs_existing and int(w.id) in needs_existing and w.id not in existing:
                results[i] = WriteResult(w.key, False, w.id, error="contact not found (deleted?)")
                continue
            fields = self._fields(w, existing.get(str(w.id)) if w.id else None)
            if w.id is None:
                commands.append((f"w{i}", "crm.contact.add", {"fields": fields}))
            elif fields:
                commands.append((f"w{i}", "crm.contact.update", {"id": int(w.id), "fields": fields}))
            else:
                results[i] = WriteResult(w.key, True, str(w.id))
        creates = any(method == "crm.contact.add" for _, method, _ in commands)
        for name, answer in self.rest.batch(commands, idempotent=not creates).items():
            i = int(name[1:])
            w = writes[i]
            if isinstance(answer, CommandError):
                results[i] = WriteResult(w.key, False, w.id, error=str(answer), retriable=answer.retriable)
            else:
                results[i] = WriteResult(w.key, True, str(w.id) if w.id else str(answer))
        record_creates(self.ledger, [results[int(name[1:])] for name, method, _ in commands
                                     if method == "crm.contact.add"])
        return [results[i] for i in range(len(writes))]

    def delete_contacts(self, ids: list[str]) -> list[WriteResult]:
        """``crm.contact.delete`` through ``batch`` (50 per request). Bitrix24's list never
        shows deleted contacts, so deletes are found by verify. Already gone ("Not found") is
        deleted too, so a retry is harmless."""
        out = {i: WriteResult(i, False, i, error=f"not a Bitrix24 contact ID: {i!r}")
               for i in ids if not str(i).isdigit()}
        commands = [(f"d{n}", "crm.contact.delete", {"id": int(i)})
                    for n, i in enumerate(ids) if i not in out]
        for name, answer in self.rest.batch(commands).items():
            i = ids[int(name[1:])]
            gone = isinstance(answer, CommandError) and "not found" in answer.description.lower()
            if isinstance(answer, CommandError) and not gone:
                out[i] = WriteResult(i, False, i, error=str(answer), retriable=answer.retriable)
            else:
                out[i] = WriteResult(i, True, i)
        return [out[i] for i in ids]

    def log_calls(self, calls: list[Call]) -> list[WriteResult]:
        """Once per session_id; see :mod:`connectors.bitrix24._calls`."""
        return self.calls.log(calls)

    def update_calls(self, calls: list[Call], activity_ids: dict[str, str]) -> list[WriteResult]:
        """Rewrite the call activities (``crm.activity.update``); see :mod:`._calls`."""
        return self.calls.update(calls, activity_ids)

    def close(self) -> None:
        self.ledger.close()
        for remote in self._remotes:
            remote.close()
