"""The sandbox's own admin surface under ``/_sandbox/`` (no Oki-Toki token).

When the sandbox runs with an admin token, every admin request must carry it as
``Authorization: Bearer <token>`` or ``X-Sandbox-Token``. Bodies are JSON; a bad body is a
400 ``{"error": ...}``. See ``docs/sandbox.md`` for each route with a curl example.
"""

from __future__ import annotations

import hmac
import json
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .calls import call_view, simulate_call, update_call
from .entities import to_dict
from .faults import FaultPlan
from .persist import snapshot as take_snapshot
from .seed import apply_seed
from .validation import normalise_phone, split_values

if TYPE_CHECKING:
    from .runtime import Sandbox

__all__ = ["admin_routes"]

AdminHandler = Callable[["Sandbox", Request, Any], Any]


def _endpoint(fn: AdminHandler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        sb: Sandbox = request.app.state.sandbox
        wanted = sb.settings.admin_token
        if wanted:
            given = request.headers.get("x-sandbox-token") or \
                request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            if not hmac.compare_digest(given.encode(), wanted.encode()):
                return JSONResponse({"error": "admin token missing or wrong"}, 401)
        body: Any = None
        raw = await request.body()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                return JSONResponse({"error": "the body must be JSON"}, 400)
        try:
            result = fn(sb, request, body)
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, 400)
        return result if isinstance(result, Response) else JSONResponse(result)
    return endpoint


def health(sb: "Sandbox", request: Request, body: Any) -> Any:
    return {"ok": True, "now": sb.state.now()}


def seed(sb: "Sandbox", request: Request, body: Any) -> Any:
    return apply_seed(sb.state, body or {})


def add_call(sb: "Sandbox", request: Request, body: Any) -> Any:
    call = simulate_call(sb.state, body or {})
    return {**call_view(call), "visible_at": call.visible_at,
            "pending_update": call.late_fields, "update_at": call.late_at}


def edit_call(sb: "Sandbox", request: Request, body: Any) -> Any:
    return call_view(update_call(sb.state, int(request.path_params["session_id"]), body or {}))


def state(sb: "Sandbox", request: Request, body: Any) -> Any:
    snapshot = take_snapshot(sb.state)
    company = request.query_params.get("company_id")
    if company:
        cid = int(company)
        for key in ("users", "dialers", "tasks", "lists", "contacts", "calls"):
            snapshot[key] = [row for row in snapshot[key] if row["company_id"] == cid]
        snapshot["companies"] = [c for c in snapshot["companies"] if c["id"] == cid]
    for user in snapshot["users"]:
        user["token"] = user["token"] and "***"
    snapshot["settings"] = sb.settings.public()
    snapshot["now"] = sb.state.now()
    return snapshot


def requests(sb: "Sandbox", request: Request, body: Any) -> Any:
    if request.method == "DELETE":
        sb.journal.clear()
        return {"result": "cleared"}
    return sb.journal.report(int(request.query_params.get("limit", 200)))


def faults(sb: "Sandbox", request: Request, body: Any) -> Any:
    if request.method == "POST":
        sb.faults = FaultPlan.parse(body or {})
    elif request.method == "DELETE":
        sb.faults = FaultPlan()
    return sb.faults.describe()


def rate_limit(sb: "Sandbox", request: Request, body: Any) -> Any:
    if request.method == "POST":
        changes = {"rate_limit_per_minute": (body or {}).get("per_minute")}
        if "retry_after_form" in (body or {}):
            changes["retry_after_form"] = body["retry_after_form"]
        sb.settings.update(changes)
        sb.rate_gate.clear()
    return {"per_minute": sb.settings.rate_limit_per_minute,
            "retry_after_form": sb.settings.retry_after_form}


def webhooks(sb: "Sandbox", request: Request, body: Any) -> Any:
    if request.method == "POST":
        rules = body.get("rules", [body]) if isinstance(body, dict) else body
        return {"rules": [vars(sb.webhooks.add_rule(r)) for r in rules]}
    if request.method == "DELETE":
        sb.webhooks.clear()
    return {"rules": [vars(r) for r in sb.webhooks.rules.values()]}


def deliveries(sb: "Sandbox", request: Request, body: Any) -> Any:
    return {"deliveries": sb.webhooks.report()}


def reset(sb: "Sandbox", request: Request, body: Any) -> Any:
    sb.reset()
    return {"result": "reset"}


def edit_contact(sb: "Sandbox", request: Request, body: Any) -> Any:
    """Change (POST) or delete (DELETE) a contact "behind the daemon's back"; ``updated_at``
    (unix or ISO) optional."""
    from . import dates
    body = dict(body or {})
    contact_id = int(request.path_params["contact_id"])
    if contact_id not in sb.state.contacts:
        raise KeyError(f"no contact {contact_id}")
    if request.method == "DELETE":
        return to_dict(sb.state.delete_contact(contact_id))
    when = body.pop("updated_at", None)
    for key in ("phones", "tags"):
        if key in body:
            values = split_values(body[key]) or []
            body[key] = [normalise_phone(v) for v in values] if key == "phones" else values
    unknown = set(body) - {"name", "phones", "email", "details", "tags"}
    if unknown:
        raise ValueError(f"cannot edit {sorted(unknown)}")
    contact = sb.state.upsert_contact(sb.state.contacts[contact_id].company_id, contact_id, body,
                                      updated_at=None if when is None else dates.parse_instant(when))
    return to_dict(contact)


def clock(sb: "Sandbox", request: Request, body: Any) -> Any:
    """``{"offset_seconds": N}`` sets the offset, ``{"advance_seconds": N}`` moves it on."""
    if request.method == "POST":
        body = body or {}
        with sb.state.lock:
            if "offset_seconds" in body:
                sb.state.clock_offset = float(body["offset_seconds"])
            sb.state.clock_offset += float(body.get("advance_seconds", 0))
    return {"now": sb.state.now(), "offset_seconds": sb.state.clock_offset}


def settings(sb: "Sandbox", request: Request, body: Any) -> Any:
    if request.method == "POST":
        sb.settings.update(body or {})
    return sb.settings.public()


def admin_routes() -> list[Route]:
    def r(path: str, fn: AdminHandler, methods: list[str]) -> Route:
        return Route("/_sandbox" + path, _endpoint(fn), methods=methods)
    return [
        r("/health", health, ["GET"]),
        r("/seed", seed, ["POST"]),
        r("/calls", add_call, ["POST"]),
        r("/calls/{session_id:int}", edit_call, ["POST"]),
        r("/state", state, ["GET"]),
        r("/requests", requests, ["GET", "DELETE"]),
        r("/faults", faults, ["GET", "POST", "DELETE"]),
        r("/rate-limit", rate_limit, ["GET", "POST"]),
        r("/webhooks", webhooks, ["GET", "POST", "DELETE"]),
        r("/webhooks/deliveries", deliveries, ["GET"]),
        r("/reset", reset, ["POST"]),
        r("/contacts/{contact_id:int}", edit_contact, ["POST", "DELETE"]),
        r("/clock", clock, ["GET", "POST"]),
        r("/settings", settings, ["GET", "POST"]),
    ]
