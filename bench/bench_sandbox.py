"""How fast is the Oki-Toki sandbox? Requests a second over loopback, so the daemon's
benchmarks can tell whether the sandbox could be their bottleneck.

    .venv/bin/python bench/bench_sandbox.py [--bulk-requests 20] [--single-requests 500]
                                            [--contacts 100000] [--mode process|thread] [--json]

Measures, with one keep-alive httpx client:
- ``imports/tasks/add`` with 1000 tasks a request (requests/s and tasks/s),
- ``dialers/create_task`` one task a request (requests/s),
- ``contacts/export`` paging 1000 contacts a page through ``--contacts`` seeded contacts.
The sandbox runs as a child process by default (its own interpreter, as in the daemon's
benchmarks); ``--mode thread`` runs it in this process. Every loop is bounded by its count.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from syncd.testing.sandbox import SandboxHandle, running_sandbox, sandbox_process  # noqa: E402


@contextmanager
def _sandbox(mode: str) -> Iterator[SandboxHandle]:
    with (sandbox_process() if mode == "process" else running_sandbox()) as sb:
        yield sb


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 1) if seconds > 0 else float("inf")


def bench_bulk(sb: SandboxHandle, client: httpx.Client, requests: int) -> dict[str, Any]:
    url = f"{sb.api_url}/imports/tasks/add"
    started = time.perf_counter()
    for r in range(requests):
        tasks = [{"phones": [f"+38067{r:03d}{i:04d}"], "details": {"n": i}} for i in range(1000)]
        response = client.post(url, json={"api_token": sb.token, "dialer_id": 102, "tasks": tasks})
        response.raise_for_status()
    elapsed = time.perf_counter() - started
    return {"benchmark": "bulk add, 1000 tasks/request", "requests": requests,
            "seconds": round(elapsed, 3), "requests_per_s": _rate(requests, elapsed),
            "tasks_per_s": _rate(requests * 1000, elapsed)}


def bench_single(sb: SandboxHandle, client: httpx.Client, requests: int) -> dict[str, Any]:
    url = f"{sb.api_url}/dialers/create_task"
    started = time.perf_counter()
    for i in range(requests):
        client.post(url, data={"api_token": sb.token, "dialer_id": 102,
                               "phones": f"38050{i:07d}"}).raise_for_status()
    elapsed = time.perf_counter() - started
    return {"benchmark": "create_task, 1 task/request", "requests": requests,
            "seconds": round(elapsed, 3), "requests_per_s": _rate(requests, elapsed),
            "tasks_per_s": _rate(requests, elapsed)}


def bench_export(sb: SandboxHandle, client: httpx.Client, contacts: int) -> dict[str, Any]:
    for start in range(0, contacts, 10_000):
        batch = [{"name": f"C{i}", "phones": [f"38063{i:07d}"], "updated_at": 1767225600 + i // 7}
                 for i in range(start, min(contacts, start + 10_000))]
        sb.seed(contacts=batch)
    url = f"{sb.api_url}/contacts/export"
    started, page, pages, rows = time.perf_counter(), 1, 1, 0
    while page <= pages:
        body = client.get(url, params={"api_token": sb.token, "page": page, "per_page": 1000,
                                       "updated_from": "01.01.2026 02:00:00"}).json()
        pages, rows, page = body["pages"], rows + len(body["contacts"]), page + 1
    elapsed = time.perf_counter() - started
    return {"benchmark": "contacts/export, 1000/page", "requests": page - 1,
            "seconds": round(elapsed, 3), "requests_per_s": _rate(page - 1, elapsed),
            "rows_per_s": _rate(rows, elapsed), "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulk-requests", type=int, default=20)
    parser.add_argument("--single-requests", type=int, default=500)
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--mode", choices=["process", "thread"], default="process")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    results = []
    with _sandbox(args.mode) as sb, httpx.Client(timeout=60) as client:
        results.append(bench_bulk(sb, client, args.bulk_requests))
        results.append(bench_single(sb, client, args.single_requests))
        if args.contacts:
            results.append(bench_export(sb, client, args.contacts))
        total = sb.requests()["total"]
    if args.json:
        print(json.dumps({"mode": args.mode, "results": results, "api_requests": total}, indent=2))
    else:
        print(f"sandbox benchmark ({args.mode} mode, loopback, {total} API requests)")
        for r in results:
            extra = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("benchmark",))
            print(f"  {r['benchmark']:<32} {extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
