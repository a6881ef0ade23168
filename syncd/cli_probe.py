"""``syncd probe [--writes --dialer ID --list ID] [--max-requests N] [--json] [--save DIR]``.

Tries every Oki-Toki operation the configuration needs against the configured account
(see :mod:`syncd.okitoki.probe`), says beforehand how many requests it will make, never makes
more than ``--max-requests`` or what is left of today's budget, and prints one row per
request: operation, path, HTTP status, what the answer held, a verdict, and for each mismatch
the profile key to change. ``--save DIR`` writes every request and answer with secrets, phone
numbers and e-mail addresses masked (``syncd sandbox --replay DIR`` serves them back).

Exit codes: 0 every row ok (warnings allowed); 1 a mismatch or a failure; 78 configuration.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx

__all__ = ["add_arguments", "main", "mask", "RecordingTransport", "render_table"]

_PHONE = re.compile(r"\+?\d[\d \-()]{5,18}\d")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
# Numbers under these names are ids, counts or times, not phone numbers.
_NOT_PHONES = re.compile(r"(^|_)(id|ids|time|stime|etime|ctime|atime|at|date|from|to|page|pages|"
                         r"per_page|total|count|added|removed|deleted|ttl|priority|skill)$")


def add_arguments(p: Any) -> None:
    p.add_argument("--writes", action="store_true",
                   help="also try the writes (a task, a list value), each undone at once")
    p.add_argument("--dialer", metavar="ID", help="dialer for the write probe (--writes)")
    p.add_argument("--list", dest="list_id", metavar="ID", help="list for the write probe "
                   "(--writes; default [do_not_call] list_id)")
    p.add_argument("--max-requests", type=int, default=20, metavar="N",
                   help="never make more requests than this (default 20)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--save", metavar="DIR", help="write the requests and answers, masked, here")


class RecordingTransport(httpx.BaseTransport):
    """Passes requests on and keeps each (request, answer) for ``--save``."""

    def __init__(self, inner: httpx.BaseTransport | None = None) -> None:
        self.inner = inner or httpx.HTTPTransport()
        self.exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        response.read()
        self.exchanges.append((request, response))
        return response

    def close(self) -> None:
        self.inner.close()


def mask(value: Any, key: str = "", secrets: tuple[str, ...] = ()) -> Any:
    """``value`` with secrets, phone numbers and e-mail addresses masked (JSON-like data)."""
    if isinstance(value, dict):
        return {k: mask(v, str(k), secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, key, secrets) for v in value]
    if key in ("api_token", "token") or (isinstance(value, str) and any(s and s in value for s in secrets)):
        return "***"
    if isinstance(value, str) and key == "json_request":
        try:
            return json.dumps(mask(json.loads(value), "", secrets), ensure_ascii=False)
        except ValueError:
            return "***"
    if _NOT_PHONES.search(key.lower()):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and len(str(abs(value))) >= 7:
        return _hide(str(value))
    if isinstance(value, str):
        return _EMAIL.sub("***@***", _PHONE.sub(lambda m: _hide(m.group(0)), value))
    return value


def _hide(number: str) -> str:
    digits = [c for c in number if c.isdigit()]
    return ("+" if number.startswith("+") else "") + "*" * (len(digits) - 2) + "".join(digits[-2:])


def _request_params(request: httpx.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(parse_qsl(request.url.query.decode(), keep_blank_values=True))
    body = request.content.decode("utf-8", "replace")
    kind = request.headers.get("content-type", "")
    if body and "json" in kind:
        try:
            params.update(json.loads(body))
        except ValueError:
            params["body"] = body
    elif body:
        params.update(parse_qsl(body, keep_blank_values=True))
    return params


def save(directory: str | Path, exchanges: list[tuple[httpx.Request, httpx.Response]],
         operations: dict[str, str], report: dict[str, Any], secrets: tuple[str, ...]) -> None:
    """One ``NN-<operation>.json`` per exchange (``operations``: path → operation), and
    ``probe.json`` (the report)."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    for n, (request, response) in enumerate(exchanges, 1):
        op = operations.get(request.url.path, "request")
        kind = response.headers.get("content-type", "").split(";")[0] or "application/octet-stream"
        answer: dict[str, Any] = {"status": response.status_code, "content_type": kind}
        try:
            answer["body"] = mask(response.json(), "", secrets)
        except ValueError:
            answer["text"] = mask(response.text[:20000], "", secrets)
        exchange = {"operation": op, "request": {"method": request.method, "path": request.url.path,
                                                 "params": mask(_request_params(request), "", secrets)},
                    "response": answer}
        (folder / f"{n:02d}-{op}.json").write_text(json.dumps(exchange, ensure_ascii=False, indent=2),
                                                    encoding="utf-8")
    (folder / "probe.json").write_text(json.dumps(mask(report, "", secrets), ensure_ascii=False, indent=2),
                                       encoding="utf-8")


def render_table(report: dict[str, Any]) -> list[str]:
    """The report as a table: one row a request, then the keys to change."""
    rows = [("operation", "method path", "HTTP", "answer held", "verdict")]
    for step in report["steps"]:
        held = "; ".join(f"{f['kind']}: {f['detail']}" for f in step["findings"]) or step["note"] or "as the profile expects"
        if step["findings"] and step["note"]:
            held += f"; {step['note']}"
        rows.append((step["operation"], f"{step['method']} {step['path']}", str(step["status"] or "-"),
                     held, step["verdict"].upper() if step["verdict"] != "ok" else "ok"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = ["  ".join(r[i].ljust(widths[i]) if i < 3 else r[i][:110].ljust(min(widths[i], 110))
                       for i in range(4)) + "  " + r[4] for r in rows]
    for op, why in report["skipped"].items():
        lines.append(f"{op}: not probed: {why}")
    fixes = [(s["operation"], f) for s in report["steps"] for f in s["findings"] if f["severity"] != "info"]
    if fixes:
        lines.append("")
        lines.append('to change in your profile file ([okitoki] profile = "..."):')
        for op, f in fixes:
            lines.append(f"  {f['key']}  ({op}: {f['kind']}: {f['detail']})")
    lines.append("")
    lines.append(f"{report['requests']} request(s) made of {report['planned']} planned; "
                 f"verdict: {report['verdict']}")
    return lines


def main(args: Any) -> int:
    from .cli_common import emit, err, load, out
    from .http import RetryPolicy
    from .logs import configure_logging
    from .okitoki import OkitokiClient
    from .okitoki.probe import plan, run

    config = load(args)
    configure_logging(config.daemon.log_format, "error")
    if args.max_requests < 1:
        err("syncd probe: --max-requests must be at least 1")
        return 2
    budget, store = _budget(config)
    try:
        left = budget.remaining("okitoki")
        cap = args.max_requests if left is None else min(args.max_requests, left)
        probe = plan(config, writes=args.writes, dialer=args.dialer, list_id=args.list_id, cap=cap)
        say = err if args.json else out
        say(f"probe: {probe.requests} request(s) to {config.okitoki.url} (cap {args.max_requests}"
            f"{'' if left is None else f', {left} left in today’s budget'}); writes: "
            f"{'yes, undone at once' if probe.units and args.writes else 'no'}")
        recorder = RecordingTransport()
        client = OkitokiClient.from_config(config.okitoki, budget=budget, transport=recorder,
                                           retry=RetryPolicy(attempts=1))
        try:
            steps = run(client, probe, datetime.now(UTC))
        finally:
            client.close()
    finally:
        if store is not None:
            getattr(budget, "release", lambda: None)()
            getattr(store, "close", lambda: None)()
    report = _report(client, probe, steps, len(recorder.exchanges))
    if args.save:
        paths = {e.path: op for op, e in client.endpoints.items()}
        save(args.save, recorder.exchanges, paths, report, tuple(client.remote.secrets))
        say(f"probe: {len(recorder.exchanges)} exchange(s) saved in {args.save} (masked)")
    if args.json:
        emit(report, True)
    else:
        for line in render_table(report):
            out(line)
    return 0 if report["verdict"] in ("ok", "warning") else 1


def _budget(config: Any) -> tuple[Any, Any]:
    """Today's shared budget from the state database when it is migrated, else a fresh one."""
    from .errors import ConfigError
    from .http import MemoryBudget

    limits = {"okitoki": config.okitoki.daily_request_budget}
    try:
        from .store import check_schema, open_store
        from .store.accounting import StoreBudget
        check_schema(config.daemon.state_url)
        store = open_store(config.daemon.state_url)
        return StoreBudget(store, limits, reserve=1), store
    except (ConfigError, ImportError):
        return MemoryBudget(limits), None


def _report(client: Any, probe: Any, steps: list[Any], made: int) -> dict[str, Any]:
    verdicts = {s.verdict for s in steps}
    overall = ("failed" if "failed" in verdicts else "mismatch" if "mismatch" in verdicts
               else "warning" if "warning" in verdicts else "ok")
    return {"url": str(client.remote.base_url), "profile": client.profile.source,
            "planned": probe.requests, "requests": made, "verdict": overall,
            "steps": [s.as_dict() for s in steps], "skipped": probe.skipped}
