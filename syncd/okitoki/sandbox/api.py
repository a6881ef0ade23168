"""The ``/api/v1`` operations of the profile in ``okitoki-api.md``.

Each handler takes the sandbox, the request's variables, the token's user and company, and
returns the success body; problems are raised as :class:`~.problems.ApiProblem`. Dates in
variables and answers are ``dd.mm.yyyy hh:mm:ss`` in the company's time zone.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from . import dates
from .calls import call_view
from .entities import Company, Contact, User
from .gateway import Handler, Operation
from .problems import invalid
from .validation import Fields, read_task, split_values

if TYPE_CHECKING:
    from .runtime import Sandbox

__all__ = ["OPERATIONS", "contact_view"]

GET, POST, BOTH = frozenset({"GET"}), frozenset({"POST"}), frozenset({"GET", "POST"})
Params = dict[str, Any]


def create_task(sb: "Sandbox", params: Params, user: User, company: Company) -> dict[str, Any]:
    errors: dict[str, list[str]] = {}
    task = read_task(params, company.timezone, errors=errors)
    if task is None:
        raise invalid(errors)
    [task_id] = sb.state.create_tasks(company, [task])
    return {"result": "success", "task_id": task_id}


def add_tasks(sb: "Sandbox", params: Params, user: User, company: Company) -> dict[str, Any]:
    """All tasks are created or none (422 with errors keyed ``tasks.<index>.<field>``)."""
    f = Fields(params, company.timezone)
    dialer_id = f.integer("dialer_id", lo=1)
    raw = params.get("tasks")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = None
    limit = sb.settings.max_bulk_tasks
    if not isinstance(raw, list) or not raw or not all(isinstance(t, dict) for t in raw):
        f.fail("tasks", "is required: a JSON array of task objects")
    elif len(raw) > limit:
        f.fail("tasks", f"at most {limit} tasks a request, got {len(raw)}")
    f.check()
    specs = [read_task(t, company.timezone, prefix=f"tasks.{i}.", errors=f.errors, default_dialer=dialer_id)
             for i, t in enumerate(raw)]
    f.check()
    with sb.state.lock:
        import_id = sb.state.new_id("import")
        ids = sb.state.create_tasks(company, specs, import_id=import_id,  # type: ignore[arg-type]
                                    prefix=lambda i: f"tasks.{i}.")
    return {"result": "success", "import_id": import_id, "task_ids": ids}


def delete_task(sb: "Sandbox", params: Params, user: User, company: Company) -> dict[str, Any]:
    f = Fields(params, company.timezone)
    dialer_id = f.integer("dialer_id", required=True, lo=1)
    task_id = f.integer("task_id", lo=1)
    phones = f.phones("phones", required=False) if task_id is None else None
    if task_id is None and not phones and not f.errors:
        f.fail("task_id", "task_id or phones is required")
    f.check()
    return {"result": "success", "deleted": sb.state.delete_tasks(company, dialer_id, task_id, phones)}


def dialer_stat(sb: "Sandbox", params: Params, user: User, company: Company) -> dict[str, Any]:
    f = Fields(params, company.timezone)
    dialer_id = f.integer("dialer_id", lo=1)
    f.check()
    return sb.state.dialer_stat(company, dialer_id)


def _list_values(params: Params, company: Company) -> tuple[int, list[str] | None]:
    """``list_id`` and ``values`` of a lists/add or lists/remove request (checked)."""
    f = Fields(params, company.timezone)
    list_id, values = f.integer("list_id", required=True, lo=1), f.values("values")
    f.check()
    return list_id, values


def list_add(sb: "Sandbox", params: Params, user: User, company: Company) -> dict[str, Any]:
    return {"result": "success", "added": sb.state.list_add(company, *_list_values(params, company))}


def list_check(sb: "Sandbox", params: Params, user: User, company: Company) -> dict[str, Any]:
    f = Fields(params, company.timezone)
    list_id, value = f.integer("list_id", required=True, lo=1), f.text("value", required=True)
    f.check()
    return {"exists": sb.state.list_check(company, list_id, value)}


def list_remove(sb: "Sandbox", params: Params, user: User, company: Company) -> dict[str, Any]:
    return {"result": "success", "removed": sb.state.list_remove(company, *_list_values(params, company))}


def upsert_contact(sb: "Sandbox", params: Params, user: User, company: Company) -> dict[str, Any]:
    """Create (no ``contact_id``) or update only the given fields; ``details`` merge by key."""
    f = Fields(params, company.timezone)
    contact_id = f.integer("contact_id", lo=1)
    changes: dict[str, Any] = {}
    if f.present("name"):
        changes["name"] = f.text("name") or ""
    if f.present("phones"):
        changes["phones"] = f.phones("phones", required=False, limit=None) or []
    if f.present("email"):
        email = f.text("email") or ""
        if email and "@" not in email:
            f.fail("email", "is not an e-mail address")
        changes["email"] = email
    if f.present("details"):
        changes["details"] = f.obj("details") or {}
    if f.present("tags"):
        tags = split_values(params["tags"])
        if tags is None:
            f.fail("tags", "must be comma separated or a JSON array")
        changes["tags"] = tags or []
    if contact_id is None and not changes.get("name") and not changes.get("phones"):
        f.fail("name", "a new contact needs a name or phones")
    f.check()
    if contact_id is not None:
        sb.state.own_contact(company, contact_id)
    contact = sb.state.upsert_contact(company.id, contact_id, changes)
    return {"result": "success", "contact_id": contact.id}


def contact_view(contact: Contact, timezone: str) -> dict[str, Any]:
    view = {"id": contact.id, "name": contact.name, "phones": list(contact.phones),
            "email": contact.email, "details": dict(contact.details), "tags": list(contact.tags),
            "updated_at": dates.format_local(contact.updated_at, timezone)}
    if contact.deleted:
        view["deleted"] = True
    return view


def _paging(sb: "Sandbox", f: Fields) -> tuple[int, int]:
    page = f.integer("page", lo=1) or 1
    per_page = f.integer("per_page", lo=1, hi=sb.settings.max_per_page) or 100
    return page, per_page


def export_contacts(sb: "Sandbox", params: Params, user: User, company: Company) -> dict[str, Any]:
    """``updated_from <= updated_at <= updated_to`` (both optional), ordered by (updated_at, id)."""
    f = Fields(params, company.timezone)
    start, end = f.date("updated_from"), f.date("updated_to")
    page, per_page = _paging(sb, f)
    f.check()
    rows, pages, total = sb.state.export_contacts(company, start, end, page, per_page)
    return {"contacts": [contact_view(c, company.timezone) for c in rows], "page": page,
            "pages": pages, "per_page": per_page, "total": total}


def call_log(sb: "Sandbox", params: Params, user: User, company: Company) -> dict[str, Any]:
    """Visible calls whose start (``stime``) is within [date_from, date_to], by (stime, session_id)."""
    f = Fields(params, company.timezone)
    start, end = f.date("date_from"), f.date("date_to")
    page, per_page = _paging(sb, f)
    f.check()
    calls = sb.state.visible_calls(company, start, end)
    first = (page - 1) * per_page
    return {"calls": [call_view(c, company.timezone) for c in calls[first:first + per_page]],
            "page": page, "pages": max(1, -(-len(calls) // per_page)), "per_page": per_page,
            "total": len(calls)}


def call_data(sb: "Sandbox", params: Params, user: User, company: Company) -> dict[str, Any]:
    f = Fields(params, company.timezone)
    session_id = f.integer("session_id", required=True, lo=1)
    f.check()
    return call_view(sb.state.own_call(company, session_id), company.timezone)


def call_data_add(sb: "Sandbox", params: Params, user: User, company: Company) -> dict[str, Any]:
    f = Fields(params, company.timezone)
    session_id = f.integer("session_id", required=True, lo=1)
    data = f.obj("data")
    if data is None and "data" not in f.errors:
        f.fail("data", "is required: a JSON object")
    f.check()
    with sb.state.lock:
        call = sb.state.own_call(company, session_id)
        call.details = {**call.details, **(data or {})}
        sb.state.changed()
    return {"result": "success"}


OPERATIONS: dict[str, Operation] = {
    "dialers/create_task": (BOTH, create_task),
    "imports/tasks/add": (POST, add_tasks),
    "dialers/delete_task": (BOTH, delete_task),
    "dialers/stat": (BOTH, dialer_stat),
    "lists/add": (BOTH, list_add),
    "lists/check": (GET, list_check),
    "lists/remove": (POST, list_remove),
    "contacts/add-update": (POST, upsert_contact),
    "contacts/export": (GET, export_contacts),
    "calls/log": (GET, call_log),
    "calls/data": (GET, call_data),
    "calls/data/add": (POST, call_data_add),
}
