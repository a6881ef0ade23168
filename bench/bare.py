"""The bare I/O of an initial sync: the same Oki-Toki requests the engine sent, from a plain
loop over one keep-alive httpx client, with nothing else (no CRM read, no state database,
no merge). The engine's wall time over this one's is its overhead.

``mirror(url, token, people, by_operation)`` sends, in the engine's order:
one ``contacts/add-update`` per person (name, email, phones, details.status), the dialer
tasks of the rules in bulk ``imports/tasks/add`` requests (tasks split evenly over as many
requests as the engine used), then the ``contacts/export`` and ``calls/log`` reads
(the export walking every contact, 1000 a page; remaining counts as empty windows).
"""

from __future__ import annotations

import json
import math
import time
from typing import Any, Sequence

import httpx

from seed import DIALERS, e164  # type: ignore[import-not-found]

__all__ = ["mirror"]

_SINCE = "01.01.2000 02:00:00"


def _chunks(items: list[Any], parts: int) -> list[list[Any]]:
    size = math.ceil(len(items) / max(1, parts)) if items else 1
    return [items[i:i + size] for i in range(0, len(items), size)]


def mirror(url: str, token: str, people: Sequence[tuple[int, Any]], by_operation: dict[str, int]) -> dict[str, Any]:
    """Send the requests; returns {"seconds", "requests": {operation: count}}."""
    api = f"{url}/api/v1"
    sent: dict[str, int] = {}
    tasks: dict[int, list[dict[str, Any]]] = {}
    for i, p in people:
        if p.status in DIALERS:
            dialer, _rule, priority, ttl, region = DIALERS[p.status]
            task = {"phones": [e164(i)], "priority": priority, "ttl": ttl}
            if region:
                task["region"] = region
            tasks.setdefault(dialer, []).append(task)
    imports = by_operation.get("imports/tasks/add", 0)
    total_tasks = sum(len(t) for t in tasks.values()) or 1
    plan = {d: max(1, round(imports * len(t) / total_tasks)) for d, t in tasks.items()}
    started = time.perf_counter()
    with httpx.Client(timeout=60) as client:
        for i, p in people[:by_operation.get("contacts/add-update", 0)]:
            client.post(f"{api}/contacts/add-update", data={
                "name": p.name, "email": p.email, "phones": e164(i),
                "details": json.dumps({"status": p.status}), "api_token": token}).raise_for_status()
        sent["contacts/add-update"] = min(len(people), by_operation.get("contacts/add-update", 0))
        for dialer, items in tasks.items():
            for chunk in _chunks(items, plan[dialer]):
                client.post(f"{api}/imports/tasks/add", data={
                    "dialer_id": dialer, "tasks": json.dumps(chunk), "api_token": token}).raise_for_status()
                sent["imports/tasks/add"] = sent.get("imports/tasks/add", 0) + 1
        exports, page, pages = by_operation.get("contacts/export", 0), 1, 1
        while exports > 0:
            body = client.get(f"{api}/contacts/export", params={
                "updated_from": _SINCE, "page": page if page <= pages else 1, "per_page": 1000,
                "api_token": token}).json()
            pages, page, exports = body["pages"], page + 1, exports - 1
            sent["contacts/export"] = sent.get("contacts/export", 0) + 1
        for _ in range(by_operation.get("calls/log", 0)):
            client.get(f"{api}/calls/log", params={"date_from": _SINCE, "date_to": "01.01.2100 00:00:00",
                                                   "page": 1, "per_page": 1000,
                                                   "api_token": token}).raise_for_status()
            sent["calls/log"] = sent.get("calls/log", 0) + 1
    return {"seconds": round(time.perf_counter() - started, 3), "requests": sent}
