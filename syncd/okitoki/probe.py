"""``syncd probe``: first contact with a real Oki-Toki account, within a request cap.

Every operation the configuration needs is tried once, the cheapest way that leaves the
account as it was: reads with a page of one record; writes only when asked, into a dialer
and a list named on the command line, each undone at once (a task added is removed, a value
added to a list is taken out). Each answer is held against the profile: the HTTP status, the
fields it lacks or has beyond the profile, the date format; every mismatch names the profile
key to change. A paged read whose first page held a record is read again at page 2: the same
record again means the account ignores the page number (it pages with another variable). :func:`plan` says beforehand which requests will be made; :func:`run` never
makes more.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Callable

from ..errors import BudgetExhausted, InvalidRequest, MethodNotAllowed, NotFound, RemoteError
from .profile import (
    DATE_FIELDS,
    DATE_PARAMS,
    REQUIRED_ANSWER,
    REQUIRED_RECORD,
    get_path,
    parse_date,
    wire_params,
)

if TYPE_CHECKING:
    from ..config import Config
    from .client import OkitokiClient

__all__ = ["Finding", "Step", "Probe", "plan", "run", "PROBE_PHONE", "PAGE_2"]

PROBE_PHONE = "380000000000"      # a number no one answers; tasks are dated a month ahead
# Record fields that only some records carry (a deleted contact, a recorded call).
_OCCASIONAL = {"deleted", "record_url"}
_QUIET = {"result", "message", "page", "per_page", "total", "status"}   # harmless extras
PAGE_2 = " page 2"     # the unit (and step) reading a paged operation's second page
_PAGED = ("call_log", "export_contacts")


@dataclass
class Finding:
    """One difference between an answer and the profile; ``key`` is what to change."""
    kind: str            # path, method, variable, missing field, date format, paging, ...
    detail: str
    key: str
    severity: str = "error"    # error | warning | info


@dataclass
class Step:
    operation: str
    method: str
    path: str
    status: int | None = None
    verdict: str = "skipped"    # ok | warning | mismatch | failed | skipped | planned
    held: str = ""              # what the answer held, in short
    findings: list[Finding] = field(default_factory=list)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Probe:
    """The plan: (operation, request count, how) in order; writes as (write, undo) units."""
    units: list[list[str]]
    skipped: dict[str, str]
    context: dict[str, Any]

    @property
    def requests(self) -> int:
        return sum(len(u) for u in self.units)


def needed(config: "Config") -> dict[str, str]:
    """The operations this configuration makes syncd call, with why."""
    ops = {"dialers": "health check"}
    if config.calls.to_crm or config.calls.outcome_status:
        ops.update(call_log="calls to the CRM", call_data="webhook hints")
    if config.contacts.create_in_crm or any(f.okitoki and f.sync != "to_okitoki"
                                            for f in config.contacts.fields.values()):
        ops["export_contacts"] = "contacts to the CRM"
    if config.dialer:
        ops.update(create_task="dialer rules", add_tasks="dialer rules", remove_task="dialer rules")
    if config.do_not_call.list_id:
        ops.update(list_check="do-not-call", list_add="do-not-call", list_remove="do-not-call")
    if config.contacts.create_in_okitoki or any(f.okitoki and f.sync != "to_crm"
                                                for f in config.contacts.fields.values()):
        ops["upsert_contact"] = "contacts to Oki-Toki"
    return ops


def plan(config: "Config", *, writes: bool, dialer: str | None, list_id: str | None,
         cap: int) -> Probe:
    """What the probe will do for ``config`` within ``cap`` requests (the rest is skipped)."""
    ops = needed(config)
    list_id = list_id or (str(config.do_not_call.list_id) if config.do_not_call.list_id else None)
    units: list[list[str]] = [[op] for op in ("dialers", "call_log", "call_data", "export_contacts") if op in ops]
    skipped: dict[str, str] = {}
    if "list_check" in ops:
        units.append(["list_check"])
    # after every first read: a second page shows whether the page number is obeyed
    units += [[op + PAGE_2] for op in _PAGED if op in ops]
    write_units = [["create_task", "remove_task"], ["add_tasks", "remove_task"], ["list_add", "list_remove"]]
    for unit in write_units:
        if unit[0] not in ops:
            continue
        if not writes:
            skipped[unit[0]] = "a write: run with --writes (it is undone at once)"
        elif unit[0] != "list_add" and not dialer:
            skipped[unit[0]] = "a write: needs --dialer ID"
        elif unit[0] == "list_add" and not list_id:
            skipped[unit[0]] = "a write: needs --list ID"
        else:
            units.append(list(unit))
    if "remove_task" in ops and not any("remove_task" in u for u in units):
        skipped["remove_task"] = "tried only as the undo of a task added with --writes"
    if "list_remove" in ops and not any("list_remove" in u for u in units):
        skipped["list_remove"] = "tried only as the undo of a value added with --writes"
    if "upsert_contact" in ops:
        skipped["upsert_contact"] = "a create that cannot be undone through the API"
    kept, used = [], 0
    for unit in units:
        if used + len(unit) > cap:
            skipped[unit[0]] = f"over the request cap ({cap})"
            continue
        kept.append(unit)
        used += len(unit)
    return Probe(kept, skipped, {"dialer": dialer, "list_id": list_id})


# -- reading one answer against the profile -------------------------------------------

_ABSENT = object()


def _suggest(wire: str, extras: list[str]) -> str:
    """A hint from the fields the answer has beyond the profile (a renamed field is one)."""
    close = difflib.get_close_matches(wire, extras, n=1, cutoff=0.6)
    if close:
        return f'; the answer has "{close[0]}"'
    return f"; the answer also has: {', '.join(extras[:8])}" if extras else ""


def _heads(mapping: dict[str, str]) -> set[str]:
    return {w.split(".")[0] for w in mapping.values()}


def check_answer(client: "OkitokiClient", op: str, body: Any, step: Step, *, asked_per_page: int | None = None) -> Any:
    """Findings for one 2xx answer; returns its first record (syncd's names) or None."""
    endpoint = client.endpoints[op]
    base = f"operations.{op}"
    extras = sorted(k for k in body if k not in _heads({**endpoint.response, **endpoint.paging})
                    and k not in _QUIET) if isinstance(body, dict) else []
    held = [f"{len(body)} top-level fields" if isinstance(body, dict) else type(body).__name__]
    for name in REQUIRED_ANSWER.get(op, ()):
        wire = endpoint.response.get(name, name)
        if get_path(body, wire) is None:
            step.findings.append(Finding("missing field", f'no "{wire}"{_suggest(wire, extras)}',
                                         f"{base}.response.{name}"))
    records: list[Any] = []
    if endpoint.paging:
        items = get_path(body, endpoint.paging["items"])
        if not isinstance(items, list):
            step.findings.append(Finding("paging", f'no list at "{endpoint.paging["items"]}"'
                                         f'{_suggest(endpoint.paging["items"], extras)}', f"{base}.paging.items"))
        else:
            records = items
            held.append(f"{len(items)} record(s)")
            if asked_per_page is not None and len(items) > asked_per_page:
                step.findings.append(Finding(
                    "paging", f'asked for {asked_per_page} a page with "{endpoint.paging["per_page"]}", '
                    f"got {len(items)}: the server pages with another variable", f"{base}.paging.per_page"))
        if get_path(body, endpoint.paging["pages"]) is None:
            step.findings.append(Finding("paging", f'no page count "{endpoint.paging["pages"]}"'
                                         f'{_suggest(endpoint.paging["pages"], extras)}', f"{base}.paging.pages"))
    elif op == "dialers":
        raw = body.get("dialers", body) if isinstance(body, dict) else body
        records = list(raw.values()) if isinstance(raw, dict) else raw if isinstance(raw, list) else []
        held.append(f"{len(records)} dialer(s)")
        extras = []
    elif endpoint.record:
        records = [body]
        extras = []
    first = next((r for r in records if isinstance(r, dict)), None)
    if extras:
        step.findings.append(Finding("unexpected fields", ", ".join(extras), base, "info"))
    if first is None:
        if endpoint.record and (endpoint.paging or op == "dialers"):
            step.note = "no records in the answer: record fields not checked"
        return None
    _check_record(client, op, first, step)
    return first


def _check_record(client: "OkitokiClient", op: str, raw: dict[str, Any], step: Step) -> None:
    endpoint, base = client.endpoints[op], f"operations.{op}"
    extras = sorted(k for k in raw if k not in _heads(endpoint.record))
    required = REQUIRED_RECORD.get(op, ())
    for name, wire in endpoint.record.items():
        if get_path(raw, wire, _ABSENT) is _ABSENT:     # present but null is fine
            step.findings.append(Finding(
                "missing field", f'records have no "{wire}"{_suggest(wire, extras)}',
                f"{base}.record.{name}",
                "error" if name in required else "info" if name in _OCCASIONAL else "warning"))
    fmt = client.profile.answer_format(op)
    key = f"{base}.answer_date_format" if endpoint.answer_date_format else "dates.format"
    for name in DATE_FIELDS.get(op, ()):
        value = get_path(raw, endpoint.record.get(name, name))
        if value in (None, ""):
            continue
        try:
            parse_date(value, fmt, client.zone)
        except (ValueError, TypeError):
            step.findings.append(Finding("date format", f'{name} is {value!r}, not "{fmt}"', key))
    if extras:
        step.findings.append(Finding("unexpected fields", "records also hold " + ", ".join(extras),
                                     f"{base}.record", "info"))


def check_error(client: "OkitokiClient", op: str, exc: RemoteError, step: Step, sent: dict[str, Any]) -> None:
    """Findings for a refused request (404 path, 405 method, 422 variables, the rest)."""
    endpoint, base = client.endpoints[op], f"operations.{op}"
    if isinstance(exc, NotFound):
        step.findings.append(Finding("path", f"{endpoint.path} does not exist on this account",
                                     f"{base}.path"))
    elif isinstance(exc, MethodNotAllowed):
        other = "POST" if endpoint.method == "GET" else "GET"
        step.findings.append(Finding("method", f"{endpoint.method} refused; try {other}", f"{base}.method"))
    elif isinstance(exc, InvalidRequest) and exc.field_errors:
        names = {w: n for n, w in {**endpoint.params, **endpoint.paging}.items()}
        for wire, problems in exc.field_errors.items():
            name = names.get(wire)
            text = "; ".join(map(str, problems))
            if name in DATE_PARAMS.get(op, ()):
                key = f"{base}.date_format" if endpoint.date_format else "dates.format"
                step.findings.append(Finding("date format", f"{wire}: {text} (sent {sent.get(name)!r})", key))
            elif name is not None:
                step.findings.append(Finding("variable", f"{wire}: {text}", f"{base}.params.{name}"))
            else:
                step.findings.append(Finding("variable", f'the server asks for "{wire}" ({text}): map the '
                                             "syncd variable that means it to this name", f"{base}.params"))
    if not step.findings:
        step.verdict = "failed"
        step.note = exc.hint or str(exc.message)


def verdict(step: Step) -> str:
    if step.verdict == "failed":
        return "failed"
    severities = {f.severity for f in step.findings}
    return "mismatch" if "error" in severities else "warning" if "warning" in severities else "ok"


# -- running the plan -----------------------------------------------------------------

Answer = tuple[Any, Any]     # (the body, its first record in the answer's names, or None)


def run(client: "OkitokiClient", probe: Probe, now: datetime) -> list[Step]:
    """Make the planned requests, one attempt each; returns one Step per planned request."""
    steps: list[Step] = []
    state: dict[str, Any] = {}

    def attempt(op: str, variables: dict[str, Any], *, per_page: int | None = None) -> Answer | None:
        endpoint = client.endpoints[op]
        step = Step(op, endpoint.method, endpoint.path)
        steps.append(step)
        try:
            body = client._call(op, variables)
        except BudgetExhausted as exc:
            step.verdict, step.note = "failed", str(exc.message)
            return None
        except RemoteError as exc:
            step.status = exc.status
            check_error(client, op, exc, step, variables)
            step.verdict = verdict(step)
            return None
        step.status = 200
        first = check_answer(client, op, body, step, asked_per_page=per_page)
        step.verdict = verdict(step)
        return body, first

    for n, unit in enumerate(probe.units):
        _run_unit(client, unit, probe.context, now, attempt, state, steps)
        if unit == ["dialers"] and steps[-1].status in (401, 403):
            # the token itself is refused: every other request would be refused and billed too
            for rest in probe.units[n + 1:]:
                probe.skipped[rest[0]] = f"not tried: the token was refused (HTTP {steps[-1].status})"
            break
    return steps


def _undo(attempt: Callable[..., Answer | None], op: str, variables: dict[str, Any], steps: list[Step],
          what: str) -> None:
    if attempt(op, variables) is None or steps[-1].verdict == "mismatch":
        steps[-1].note = (steps[-1].note + "; " if steps[-1].note else "") + f"could not undo: {what}"


def _run_unit(client: "OkitokiClient", unit: list[str], ctx: dict[str, Any], now: datetime,
              attempt: Callable[..., Answer | None], state: dict[str, Any], steps: list[Step]) -> None:
    op = unit[0]

    def date(o: str, moment: datetime) -> Any:
        return client._date(o, moment)

    if op == "dialers":
        attempt("dialers", {})
    elif op == "call_log":
        variables = {"date_from": date(op, now - timedelta(days=1)), "date_to": date(op, now),
                     "page": 1, "per_page": 1}
        got = attempt(op, variables, per_page=1)
        state[op] = (variables, got[1] if got is not None else None)
        if got is not None and isinstance(got[1], dict):
            state["session_id"] = get_path(got[1], client.endpoints[op].record.get("session_id", "session_id"))
    elif op == "call_data":
        if state.get("session_id") is None:
            endpoint = client.endpoints[op]
            steps.append(Step(op, endpoint.method, endpoint.path,
                              note="no call read from call_log (none in the last day, or it failed): "
                                   "not probed, no request made"))
            return
        attempt(op, {"session_id": state["session_id"]})
    elif op == "export_contacts":
        variables = {"updated_from": date(op, now - timedelta(days=30)), "updated_to": date(op, now),
                     "page": 1, "per_page": 1}
        got = attempt(op, variables, per_page=1)
        state[op] = (variables, got[1] if got is not None else None)
    elif op.endswith(PAGE_2):
        _page_2(client, op.removesuffix(PAGE_2), state, steps)
    elif op == "list_check":
        attempt(op, {"list_id": ctx["list_id"], "value": PROBE_PHONE})
    elif op in ("create_task", "add_tasks"):
        task = {"phones": [PROBE_PHONE], "date": date("create_task", now + timedelta(days=30)),
                "ttl": 3600, "details": {"syncd": "probe"}}
        if op == "create_task":
            got = attempt(op, {"dialer_id": ctx["dialer"], **task, "force_create": 1})
            ids = [get_path(got[0], client.endpoints[op].response.get("task_id", "task_id"))] if got else []
        else:
            got = attempt(op, {"dialer_id": ctx["dialer"],
                               "tasks": [wire_params(client.endpoints["create_task"], task)]})
            found = get_path(got[0], client.endpoints[op].response.get("task_ids", "task_ids")) if got else None
            ids = found if isinstance(found, list) else []
        what = f"a task for {PROBE_PHONE} may be left in dialer {ctx['dialer']}; remove it by hand"
        if ids and ids[0] is not None:
            _undo(attempt, "remove_task", {"dialer_id": ctx["dialer"], "task_id": str(ids[0])}, steps, what)
        else:   # nothing (knowingly) created: remove by the probe number, in case
            _undo(attempt, "remove_task", {"dialer_id": ctx["dialer"], "phones": [PROBE_PHONE]}, steps, what)
    elif op == "list_add":
        attempt(op, {"list_id": ctx["list_id"], "values": [PROBE_PHONE]})
        _undo(attempt, "list_remove", {"list_id": ctx["list_id"], "values": [PROBE_PHONE]}, steps,
              f"{PROBE_PHONE} may be left in list {ctx['list_id']}; remove it by hand")


def _page_2(client: "OkitokiClient", op: str, state: dict[str, Any], steps: list[Step]) -> None:
    """Read page 2 of ``op`` as page 1 was read; the record of page 1 again: paging ignored.

    Only when page 1 held a record (an empty first page tells nothing, and costs nothing)."""
    endpoint, base = client.endpoints[op], f"operations.{op}"
    step = Step(op + PAGE_2, endpoint.method, endpoint.path)
    steps.append(step)
    variables, first = state.get(op, (None, None))
    if variables is None or not isinstance(first, dict):
        step.note = "page 1 held no record (or failed): page 2 not read, no request made"
        return
    try:
        body = client._call(op, {**variables, "page": 2})
    except BudgetExhausted as exc:
        step.verdict, step.note = "failed", str(exc.message)
        return
    except RemoteError as exc:
        step.status = exc.status
        check_error(client, op, exc, step, {**variables, "page": 2})
        step.verdict = verdict(step)
        return
    step.status = 200
    items = get_path(body, endpoint.paging["items"]) if endpoint.paging else None
    again = next((r for r in items if isinstance(r, dict)), None) if isinstance(items, list) else None
    step.held = f"{len(items)} record(s)" if isinstance(items, list) else type(body).__name__
    if again is not None and again == first:
        page = endpoint.paging.get("page", "page")
        step.findings.append(Finding(
            "paging", f'paging ignored: page 2 ("{page}" = 2) answered the record of page 1 again; '
            "the account pages with another variable", f"{base}.paging.page"))
    step.verdict = verdict(step)
