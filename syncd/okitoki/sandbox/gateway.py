"""What stands in front of every ``/api/v1`` operation, in this order:

1. read the variables (query; form or JSON body; ``json_request``),
2. record the request in the journal (token hashed, never stored),
3. the per-token rate limit (429 + ``Retry-After``),
4. injected faults (see :mod:`.faults`),
5. 404 for an unknown operation, 405 for a method the operation does not accept,
6. authentication by ``api_token`` (401), then the operation itself (422 on bad variables).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .entities import Company, User
from .faults import Fault, retry_after_header
from .journal import JournalRecord
from .problems import ApiProblem, error_body

if TYPE_CHECKING:
    from .runtime import Sandbox

__all__ = ["Operation", "handle", "read_params"]

Handler = Callable[["Sandbox", dict[str, Any], User, Company], dict[str, Any]]
Operation = tuple[frozenset[str], Handler]
_HTML = ("<html><head><title>{status} Bad Gateway</title></head><body><center>"
         "<h1>{status} Bad Gateway</h1></center><hr><center>nginx</center></body></html>")


async def read_params(request: Request) -> dict[str, Any]:
    """All variables of the request as one dict; ``json_request`` (a JSON string of an object)
    is unpacked over the others. Raises a 422 :class:`ApiProblem` for an unreadable body."""
    params: dict[str, Any] = dict(request.query_params)
    if request.method != "GET":
        body = await request.body()
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if body:
            if kind == "application/json" or (not kind and body.lstrip()[:1] == b"{"):
                try:
                    parsed = json.loads(body)
                except ValueError:
                    raise ApiProblem(422, "the JSON body is not valid JSON", {"body": ["invalid JSON"]})
                if not isinstance(parsed, dict):
                    raise ApiProblem(422, "the JSON body must be an object", {"body": ["must be an object"]})
                params.update(parsed)
            elif kind in ("application/x-www-form-urlencoded", ""):
                params.update(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            else:
                raise ApiProblem(422, f"unsupported content type {kind}: send a form or JSON",
                                 {"body": ["use application/x-www-form-urlencoded or application/json"]})
    if "json_request" in params:
        raw = params.pop("json_request")
        try:
            inner = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            inner = None
        if not isinstance(inner, dict):
            raise ApiProblem(422, "json_request must be a JSON object",
                             {"json_request": ["must be a JSON string of an object"]})
        params.update(inner)
    return params


def _problem_response(problem: ApiProblem) -> Response:
    return JSONResponse(problem.body(), problem.status, headers=problem.headers)


def _fault_response(fault: Fault, result: dict[str, Any] | None) -> Response:
    if fault.kind == "status":
        status = fault.status or 500
        return JSONResponse(error_body(f"injected fault: HTTP {status}"), status)
    if fault.kind == "retry_after":
        wait = fault.seconds if fault.seconds is not None else 1.0
        header = retry_after_header(wait, fault.form, time.time())
        return JSONResponse(error_body("request limit exceeded"), 429, headers={"Retry-After": header})
    if fault.kind == "truncated_json":
        text = json.dumps(result or {"result": "success", "data": {"note": "x" * 40}})
        return Response(text[: max(1, len(text) // 2)], 200, media_type="application/json")
    if fault.kind == "html":
        status = fault.status or 502
        return Response(_HTML.format(status=status), status, media_type="text/html")
    if fault.kind == "error_200":
        return JSONResponse({"error": "internal error, try again later"}, 200)
    return Response(_HTML.format(status=504).replace("Bad Gateway", "Gateway Time-out"), 504,
                    media_type="text/html")  # timeout


async def handle(sandbox: "Sandbox", request: Request, name: str, operation: Operation | None) -> Response:
    """Serve one API request through the steps above."""
    started = time.perf_counter()
    problem: ApiProblem | None = None
    try:
        params = await read_params(request)
    except ApiProblem as exc:
        params, problem = {}, exc
    token = params.get("api_token")
    token_key = hashlib.sha256(str(token).encode()).hexdigest()[:12] if token else (
        f"ip:{request.client.host}" if request.client else "anonymous")
    user_id = sandbox.state.tokens.get(token) if isinstance(token, str) else None
    record = sandbox.journal.arrive(JournalRecord(
        at=time.time(), method=request.method, path=request.url.path, operation=name,
        user_id=user_id, token_hash=token_key, query=request.url.query))
    status, retry_after = 0, None
    try:
        response, retry_after = await _serve(sandbox, request, record, operation, params, problem)
        status = response.status_code
        return response
    finally:  # also when the client gave up during an injected timeout
        sandbox.journal.finish(record, status, (time.perf_counter() - started) * 1000, retry_after)


async def _serve(sandbox: "Sandbox", request: Request, record: JournalRecord,
                 operation: Operation | None, params: dict[str, Any],
                 problem: ApiProblem | None) -> tuple[Response, float | None]:
    admitted, wait, remaining = sandbox.rate_gate.admit(
        record.token_hash, sandbox.settings.rate_limit_per_minute, record.at)
    if not admitted:
        record.fault = "rate_limit"
        header = retry_after_header(wait, sandbox.settings.retry_after_form, record.at)
        return JSONResponse(error_body("request limit exceeded"), 429,
                            headers={"Retry-After": header, "X-RateLimit-Remaining": "0"}), wait
    delay, fault = sandbox.faults.pick(record.operation)
    if delay:
        await asyncio.sleep(delay)
    if fault is not None:
        record.fault = fault.kind
        if fault.kind == "retry_after":
            wait = fault.seconds if fault.seconds is not None else 1.0
            return _fault_response(fault, None), wait
        if not fault.apply or fault.kind == "status":
            if fault.kind == "timeout":
                await asyncio.sleep(fault.seconds if fault.seconds is not None else 30.0)
            return _fault_response(fault, None), None
    try:
        if operation is None:
            raise ApiProblem(404, f"no such API method: {request.url.path}")
        methods, handler = operation
        if request.method not in methods:
            raise ApiProblem(405, f"method {request.method} is not allowed here; use "
                             + " or ".join(sorted(methods)), headers={"Allow": ", ".join(sorted(methods))})
        if problem is not None:
            raise problem
        user, company = sandbox.state.authenticate(params.get("api_token"))
        result = handler(sandbox, params, user, company)
    except ApiProblem as exc:
        return _problem_response(exc), None
    if fault is not None:  # performed, then answered badly
        if fault.kind == "timeout":
            await asyncio.sleep(fault.seconds if fault.seconds is not None else 30.0)
        return _fault_response(fault, result), None
    headers = {"X-RateLimit-Remaining": str(remaining)} if remaining is not None else None
    return JSONResponse(result, headers=headers), None
