"""Many clients at once: the state stays consistent (ids unique, uniqueness holds)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx


def test_concurrent_bulk_imports_get_distinct_ids(sandbox):
    def bulk(worker: int) -> list[int]:
        tasks = [{"phones": [f"38066{worker:02d}{i:05d}"]} for i in range(200)]
        with httpx.Client(timeout=30) as client:
            ids = []
            for _ in range(3):
                r = client.post(f"{sandbox.api_url}/imports/tasks/add",
                                json={"api_token": sandbox.token, "dialer_id": 102, "tasks": tasks})
                assert r.status_code == 200, r.text
                ids += r.json()["task_ids"]
            return ids

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(bulk, range(4)))
    every = [i for ids in results for i in ids]
    assert len(every) == 4 * 3 * 200 == len(set(every))
    assert len(sandbox.state()["tasks"]) == len(every)


def test_racing_creates_of_one_phone_in_a_unique_dialer_make_one_task(sandbox):
    def create(_: int) -> int:
        return httpx.post(f"{sandbox.api_url}/dialers/create_task", timeout=30, data={
            "api_token": sandbox.token, "dialer_id": 101, "phones": "380991234567"}).status_code

    with ThreadPoolExecutor(6) as pool:
        statuses = sorted(pool.map(create, range(6)))
    assert statuses == [200] + [422] * 5


def test_a_bad_simulated_call_is_a_400_naming_the_problem(sandbox):
    r = sandbox.admin.post("/_sandbox/calls", json={"phone": "380501112233", "direction": "sideways"})
    assert r.status_code == 400 and "direction" in r.json()["error"]
    r = sandbox.admin.post("/_sandbox/calls", json={"task_id": 999})
    assert r.status_code == 400
