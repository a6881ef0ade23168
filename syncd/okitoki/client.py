"""The Oki-Toki API client: one method per operation of the endpoint table, typed results.

Every request goes through one :class:`syncd.http.RemoteSystem` (rate limiter, daily budget,
retries honouring ``Retry-After``, request journal, redaction). The API token travels as the
variable ``api_token`` (query string for GET, form body for POST, or inside ``json_request``)
and is registered as a secret, so it never shows in logs, errors or the journal.

Thread-safe: the client keeps no mutable state; many jobs may share one instance.
Idempotency: reads, updates and ``list_*`` are safe to repeat and are retried on any transient
failure. ``create_task``, ``add_tasks`` and ``upsert_contact`` without ``contact_id`` create a
new record each time they succeed (endpoints marked ``idempotent = false`` in the profile),
so they go out with ``RemoteSystem.request(idempotent=False)``: retried in place only when the
failure proves nothing was done (429 or another throttling answer, no connection made); after
a timeout, 5xx or garbled answer they raise ``TransientError`` at once and the caller (the
outbox) looks up before sending again.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable, Iterator

import structlog

from ..errors import AuthenticationError, ConfigError, InvalidRecord, NotFound, TransientError
from ..http import MemoryBudget, RemoteSystem, RetryPolicy
from ..model import Call, Contact, ContactWrite, TaskSpec, Unreadable
from ..redact import register_secret
from .dates import parse_remote_time
from .endpoints import Endpoint, Form
from .variables import json_ids, plain
from .paging import Fetch, walk_by_offset, walk_by_time
from .parse import HINTS, body_of, make_check
from .profile import (
    DATE_FIELDS,
    MissingRecordField,
    Profile,
    format_date,
    get_path,
    load_profile,
    parse_date,
    read_answer,
    read_record,
    require,
    wire_params,
)
from .records import (
    Dialer,
    call_from_raw,
    contact_from_raw,
    contact_payload,
    dialers_from_raw,
    task_payload,
)

if TYPE_CHECKING:
    import httpx

    from ..config import OkitokiConfig
    from ..http import Journal, RequestBudget

__all__ = ["OkitokiClient"]

log = structlog.get_logger("syncd.okitoki")
# on_unreadable(record id or None, reason, raw entry): what to do with an entry that cannot be read
OnUnreadable = Callable[[str | None, str, dict[str, Any]], None]


def _ceil_second(moment: datetime) -> datetime:
    return moment if not moment.microsecond else moment + timedelta(microseconds=10**6 - moment.microsecond)


class OkitokiClient:
    """Talks to one Oki-Toki account. Build it with :meth:`from_config` in the daemon.

    ``timezone`` is the account's IANA zone (Oki-Toki dates carry no offset); ``profile`` is
    the API profile (default: the shipped one, see :mod:`.profile`); ``endpoints`` overrides
    paths (operation → path); ``form`` says how variables travel unless the profile pins it. The client installs its response check on
    ``remote``. ``api_token`` defaults to the first of ``remote.secrets``.
    """

    def __init__(self, remote: RemoteSystem, *, timezone: str,
                 endpoints: dict[str, str] | None = None, form: Form = "plain",
                 api_token: str | None = None, profile: Profile | None = None) -> None:
        if form not in ("plain", "json_request"):
            raise ValueError(f'form must be "plain" or "json_request", not {form!r}')
        token = api_token if api_token is not None else next(iter(remote.secrets), None)
        if not token:
            raise ConfigError("okitoki.api_token: no API token given")
        register_secret(token)
        self.remote = remote
        if profile is None:
            profile = load_profile(None, endpoints)
        elif endpoints:
            profile = profile.with_paths(endpoints)
        self.profile = profile
        self.zone = profile.zone(timezone)
        self.endpoints: dict[str, Endpoint] = dict(profile.operations)
        self.form: Form = form
        self._token = token
        remote.check = make_check(remote.system, remote.now)
        remote.hints = {**HINTS, **remote.hints}

    @classmethod
    def from_config(cls, cfg: "OkitokiConfig", *, budget: "RequestBudget | None" = None,
                    journal: "Journal | None" = None,
                    transport: "httpx.BaseTransport | None" = None,
                    retry: RetryPolicy | None = None, form: Form = "plain") -> "OkitokiClient":
        """A client for ``[okitoki]``. Without ``budget``, an in-memory one with the configured
        daily limit (the daemon passes its persistent budget)."""
        token = cfg.api_token
        if not token and cfg.api_token_file:
            from ..secret_file import read_secret_file

            try:   # the same capped, timed, one-line reader as the configuration's
                token = read_secret_file(cfg.api_token_file)
            except ValueError as exc:
                raise ConfigError(f"okitoki.api_token_file: {exc}") from None
        if not token:
            raise ConfigError("okitoki.api_token: set api_token or api_token_file")
        remote = RemoteSystem(
            system="okitoki", base_url=cfg.url.rstrip("/"), secrets=[token],
            timeout=cfg.timeout.total_seconds(), requests_per_minute=cfg.requests_per_minute,
            budget=budget if budget is not None else MemoryBudget({"okitoki": cfg.daily_request_budget}),
            journal=journal, retry=retry or RetryPolicy(), transport=transport,
            max_connections=max(10, cfg.max_in_flight),   # one connection per request in flight
        )
        profile = load_profile(getattr(cfg, "profile", None), dict(cfg.endpoints))
        return cls(remote, timezone=cfg.timezone, form=form, api_token=token, profile=profile)

    def close(self) -> None:
        self.remote.close()

    def __enter__(self) -> "OkitokiClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the one place a request is built -------------------------------------------------
    def _call(self, operation: str, variables: dict[str, Any], *, idempotent: bool | None = None) -> Any:
        endpoint = self.endpoints[operation]
        if idempotent is None:
            idempotent = endpoint.idempotent
        variables = {k: v for k, v in variables.items() if v is not None}
        form = endpoint.form or self.form
        if form == "json_request":   # ids become numbers by syncd's names, then names are the profile's
            payload = {"json_request": json.dumps({**wire_params(endpoint, json_ids(variables)),
                                                   "api_token": self._token}, ensure_ascii=False, default=str)}
        else:
            payload = {k: plain(v) for k, v in wire_params(endpoint, variables).items()}
            payload["api_token"] = self._token
        where: dict[str, Any] = {"params": payload} if endpoint.method == "GET" else {"data": payload}
        log.debug("okitoki.request", operation=operation, method=endpoint.method,
                  path=endpoint.path, form=form)
        response = self.remote.request(endpoint.method, endpoint.path, operation=operation,
                                       idempotent=idempotent, **where)
        return body_of(response)

    def _field(self, body: Any, operation: str, key: str) -> Any:
        """The answer's ``key`` (syncd's name, mapped by the profile); MissingField if absent."""
        return read_answer(self.endpoints[operation], body, key)

    def _date(self, operation: str, moment: datetime) -> Any:
        """A date variable of ``operation`` as the profile writes it."""
        return format_date(moment, self.profile.request_format(operation), self.zone)

    def _record(self, operation: str, raw: dict[str, Any], *, strict: bool = True) -> dict[str, Any]:
        """One answer record in syncd's names, its dates read by the profile's format (and,
        tolerantly, any other form Oki-Toki may use). MissingRecordField for a required one
        (``strict``)."""
        record = read_record(self.endpoints[operation], raw, strict=strict)
        fmt = self.profile.answer_format(operation)
        for name in DATE_FIELDS.get(operation, ()) if fmt != "unix" else ():
            value = record.get(name)
            if value not in (None, ""):
                try:
                    stamp = parse_date(value, fmt, self.zone).timestamp()
                except (ValueError, TypeError):
                    continue   # parse_remote_time still reads unix, Oki-Toki and ISO forms
                record[name] = int(stamp) if stamp.is_integer() else stamp
        return record

    def _count(self, body: Any, operation: str, key: str) -> int:
        value = self._field(body, operation, key)
        try:
            return int(value)
        except (TypeError, ValueError):
            raise TransientError(f'malformed response: "{key}" is not a number',
                                 system=self.remote.system, operation=operation, status=200) from None

    def _fetcher(self, operation: str, variables: dict[str, Any], key: str, per_page: int,
                 from_key: str) -> Fetch:
        """fetch(from_time, page) -> (items, pages) for one paged operation."""
        endpoint = self.endpoints[operation]
        limit = endpoint.max_items or per_page
        if not 1 <= per_page <= limit:
            raise ValueError(f"{operation}: per_page must be 1..{limit}, got {per_page}")

        def fetch(start: datetime, page: int) -> tuple[list[dict[str, Any]], int]:
            body = self._call(operation, {from_key: self._date(operation, start), **variables,
                                          "page": page, "per_page": per_page})
            items = read_answer(endpoint, body, "items", section="paging")
            if not isinstance(items, list):
                raise TransientError(f'malformed response: "{endpoint.paging.get("items", key)}" '
                                     "is not a list", system=self.remote.system,
                                     operation=operation, status=200)
            try:
                pages = int(get_path(body, endpoint.paging["pages"]) or page)
            except (TypeError, ValueError):
                pages = page
            # syncd's names from here on (the walk compares ids and stamps); required fields
            # are checked per record by the caller, so one bad record does not stop the walk
            return [self._record(operation, item, strict=False) for item in items
                    if isinstance(item, dict)], pages

        return fetch

    # -- operations ------------------------------------------------------------------------
    def health_check(self) -> None:
        """The cheapest authenticated call (``dialers/stat``); raises 401/403 with hints."""
        self._call("dialers", {})

    def create_task(self, spec: TaskSpec) -> str:
        """Add one task (1-5 phones) to a dialer; returns its task id. Not idempotent."""
        payload = task_payload(spec, self.zone, when=lambda m: self._date("create_task", m))
        return str(self._field(self._call("create_task", payload), "create_task", "task_id"))

    def add_tasks(self, dialer_id: str, specs: list[TaskSpec]) -> list[str]:
        """Add up to 1000 tasks to one dialer in one request; task ids in input order.

        Every spec is checked (phones, priority) before anything is sent: InvalidRecord for
        the first bad one. ValueError for more than 1000 specs or a spec of another dialer.
        """
        if not specs:
            return []
        limit = self.endpoints["add_tasks"].max_items or 1000
        if len(specs) > limit:
            raise ValueError(f"add_tasks takes at most {limit} tasks per request, got {len(specs)}")
        tasks = []
        for spec in specs:
            if str(spec.dialer_id) != str(dialer_id):
                raise ValueError(f"add_tasks for dialer {dialer_id} got a task for dialer {spec.dialer_id}")
            task = task_payload(spec, self.zone, when=lambda m: self._date("create_task", m))
            del task["dialer_id"]
            tasks.append(wire_params(self.endpoints["create_task"], task))
        body = self._call("add_tasks", {"dialer_id": dialer_id, "tasks": tasks})
        ids = self._field(body, "add_tasks", "task_ids")
        if not isinstance(ids, list) or len(ids) != len(specs):
            raise TransientError(f"malformed response: {len(specs)} tasks sent, task_ids does not "
                                 "list one id each", system=self.remote.system,
                                 operation="add_tasks", status=200)
        return [str(i) for i in ids]

    def remove_task(self, dialer_id: str, *, task_id: str | None = None,
                    phones: list[str] | tuple[str, ...] | None = None) -> int:
        """Remove a dialer's task by id, or its tasks for these phones; returns how many.
        Idempotent: removing what is gone returns 0."""
        if task_id is None and not phones:
            raise ValueError("remove_task needs task_id or phones")
        body = self._call("remove_task", {"dialer_id": dialer_id, "task_id": task_id,
                                          "phones": list(phones) if phones else None})
        return self._count(body, "remove_task", "deleted")

    def dialers(self) -> dict[str, Dialer]:
        """Every dialer the token can see, by id (string), with its operators."""
        body = self._call("dialers", {})
        if isinstance(body, dict) and isinstance(body.get("dialers"), (dict, list)):
            body = body["dialers"]
        items = body.values() if isinstance(body, dict) else body if isinstance(body, list) else []
        records = []
        for raw in items:
            if isinstance(raw, dict):
                try:
                    records.append(self._record("dialers", raw))
                except MissingRecordField as exc:
                    log.warning("okitoki.record_skipped", operation="dialers", reason=exc.reason)
        return dialers_from_raw(records)

    def list_add(self, list_id: str, values: list[str]) -> int:
        """Add values (e.g. phone numbers) to a list; returns how many were new. Idempotent."""
        if not values:
            return 0
        body = self._call("list_add", {"list_id": list_id, "values": list(values)})
        return self._count(body, "list_add", "added")

    def list_check(self, list_id: str, value: str) -> bool:
        """Whether ``value`` is in the list."""
        body = self._call("list_check", {"list_id": list_id, "value": value})
        return bool(self._field(body, "list_check", "exists"))

    def list_remove(self, list_id: str, values: list[str]) -> int:
        """Remove values from a list; returns how many were there. Idempotent."""
        if not values:
            return 0
        body = self._call("list_remove", {"list_id": list_id, "values": list(values)})
        return self._count(body, "list_remove", "removed")

    def upsert_contact(self, write: ContactWrite) -> str:
        """Create (``write.id`` None) or update a contact in Oki-Toki's CRM; returns its id.

        ``write.fields`` uses Oki-Toki names: ``name``, ``email``, ``tags``, ``details.<key>``
        (sent together as the ``details`` object). A create is not idempotent.
        """
        body = self._call("upsert_contact", contact_payload(write), idempotent=write.id is not None)
        return str(self._field(body, "upsert_contact", "contact_id"))

    def export_contacts(self, updated_from: datetime, updated_to: datetime | None = None,
                        per_page: int = 1000, *,
                        on_unreadable: Callable[[Unreadable], None] | None = None) -> Iterator[Contact]:
        """Contacts changed in [updated_from, updated_to], lazily, one page in memory.

        Bounds are tz-aware, sent in the account zone to whole seconds (the lower one rounded
        down, the upper one up: windows only ever grow). ``updated_at`` comes back UTC.
        Pages are walked by time (see :mod:`.paging`), so a contact changed during the walk
        never hides another; it may itself come twice (old, then new state).
        Entries that cannot be read are logged (``okitoki.record_skipped``), handed to
        ``on_unreadable`` (the engine quarantines them) and skipped: the walk goes on.
        """
        variables = {"updated_to": self._date("export_contacts", _ceil_second(updated_to)) if updated_to else None}
        fetch = self._fetcher("export_contacts", variables, "contacts", per_page, "updated_from")
        walk = walk_by_time(fetch, updated_from, lambda raw: parse_remote_time(raw.get("updated_at"), self.zone),
                            operation="export_contacts")
        endpoint = self.endpoints["export_contacts"]
        for raw in walk:
            try:
                yield contact_from_raw(require(endpoint, raw), self.zone)
            except (KeyError, ValueError, TypeError, AttributeError, InvalidRecord) as exc:
                rid = str(raw.get("id")) if isinstance(raw, dict) and raw.get("id") is not None else None
                reason = (f"{type(exc).__name__}: {exc}" if isinstance(exc, KeyError) else
                          exc.reason if isinstance(exc, InvalidRecord) else str(exc))
                log.warning("okitoki.record_skipped", operation="export_contacts",
                            record_id=rid, reason=reason)
                if on_unreadable is not None:
                    on_unreadable(Unreadable(id=rid, reason=f"unreadable Oki-Toki contact: {reason}",
                                             raw=raw if isinstance(raw, dict) else {"raw": repr(raw)[:500]}))

    def call_log(self, date_from: datetime, date_to: datetime, per_page: int = 1000, *,
                 on_unreadable: OnUnreadable | None = None) -> Iterator[Call]:
        """Calls whose *start* is in [date_from, date_to], lazily, one page in memory. Times
        UTC, durations s.

        A call shows only after hangup and may change shortly after: callers re-read windows
        as long as their longest calls and de-duplicate by ``session_id``. An entry that
        cannot be read is handed to ``on_unreadable(session_id or None, reason, raw entry)``
        (the daemon quarantines it) and the walk goes on; without a handler it is logged
        (``okitoki.record_skipped``) and skipped.
        """
        variables = {"date_to": self._date("call_log", _ceil_second(date_to))}
        fetch = self._fetcher("call_log", variables, "calls", per_page, "date_from")
        # Calls only ever arrive (an insert can repeat a row, never hide one): offsets are safe.
        for raw in walk_by_offset(fetch, date_from):
            try:
                yield call_from_raw(require(self.endpoints["call_log"], raw), self.zone)
            except InvalidRecord as exc:
                if on_unreadable is not None:
                    on_unreadable(exc.record_id, exc.reason, raw)
                else:
                    log.warning("okitoki.record_skipped", operation="call_log",
                                record_id=exc.record_id, reason=exc.reason)

    def call_data(self, session_id: str) -> dict[str, Any]:
        """The data stored with a call (the call as Oki-Toki returns it)."""
        body = self._call("call_data", {"session_id": session_id})
        if not isinstance(body, dict):
            raise TransientError("malformed response: expected an object",
                                 system=self.remote.system, operation="call_data", status=200)
        return body

    def call(self, session_id: str) -> Call | None:
        """One call by ``session_id`` (``calls/data``), or None while Oki-Toki does not show it
        (it answers 401 or 404 for an object that does not exist, e.g. before hangup).
        InvalidRecord if the entry cannot be read."""
        try:
            raw = self.call_data(session_id)
        except (AuthenticationError, NotFound):
            return None
        return call_from_raw(self._record("call_data", raw), self.zone)

    def add_call_data(self, session_id: str, data: dict[str, Any]) -> None:
        """Attach ``data`` (a JSON object) to a call. Repeating it writes the same data again."""
        self._call("add_call_data", {"session_id": session_id, "data": data})
