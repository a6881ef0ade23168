"""Simulated calls fire the configured webhooks, delivered by a background thread with retries."""

from __future__ import annotations

import time

import httpx

PHONE = "380501112233"


def _settled(sandbox, n=1, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deliveries = sandbox.deliveries()
        if len(deliveries) >= n and all(d["state"] != "pending" for d in deliveries):
            return deliveries
        time.sleep(0.02)
    raise AssertionError(f"deliveries still pending: {sandbox.deliveries()}")


def test_call_finished_is_delivered_as_get_with_the_template_filled(sandbox, receiver):
    sandbox.add_webhook(event="call_finished", url=f"{receiver.url}/events/okitoki", method="GET",
                        template="event=call_finished&session_id={session_id}&phone={ani}",
                        params={"token": "hook-secret"})
    sid = sandbox.add_call(phone=PHONE, direction="in")["session_id"]
    [delivery] = _settled(sandbox)
    assert delivery["state"] == "success" and delivery["attempts"] == 1
    [req] = receiver.requests
    assert req["method"] == "GET" and req["path"] == "/events/okitoki"
    assert req["query"] == {"event": "call_finished", "session_id": str(sid), "phone": PHONE,
                            "token": "hook-secret"}


def test_post_sends_a_form_and_json_sends_an_object(sandbox, receiver):
    sandbox.add_webhook(event="call_finished", url=receiver.url, method="POST",
                        template="session_id={session_id}&result={result}")
    sandbox.add_webhook(event="call_finished", url=receiver.url, method="JSON",
                        template="session_id={session_id}&dnis={dnis}")
    sid = sandbox.add_call(phone=PHONE, direction="out", outcome="busy")["session_id"]
    _settled(sandbox, 2)
    by_type = {r["content_type"].split(";")[0]: i for i, r in enumerate(receiver.requests)}
    assert receiver.form(by_type["application/x-www-form-urlencoded"]) == {
        "session_id": str(sid), "result": "busy"}
    assert receiver.json(by_type["application/json"]) == {"session_id": str(sid), "dnis": PHONE}


def test_a_failing_target_is_retried_with_backoff_until_it_answers(sandbox, receiver):
    receiver.statuses = [500, 503]
    sandbox.add_webhook(event="call_finished", url=receiver.url, method="GET", template="s={session_id}")
    sandbox.add_call(phone=PHONE)
    [delivery] = _settled(sandbox)
    assert delivery["state"] == "success" and delivery["attempts"] == 3
    times = [h["at"] for h in delivery["history"]]
    assert [h["status"] for h in delivery["history"]] == [500, 503, 200]
    assert times[1] - times[0] >= 0.2 and times[2] - times[1] >= 0.4  # doubling backoff


def test_a_target_that_keeps_failing_ends_failed(sandbox, receiver):
    receiver.statuses = [500] * 10
    sandbox.add_webhook(event="call_finished", url=receiver.url, template="s={session_id}")
    sandbox.add_call(phone=PHONE)
    [delivery] = _settled(sandbox)
    assert delivery["state"] == "failed" and delivery["attempts"] == 3
    assert delivery["last_error"] == "HTTP 500"


def test_a_dialer_call_also_fires_task_finished(sandbox, receiver):
    sandbox.add_webhook(event="task_finished", url=receiver.url, method="JSON",
                        template="task_id={task_id}&session_id={session_id}&result={result}")
    task_id = httpx.post(f"{sandbox.api_url}/dialers/create_task", data={
        "api_token": sandbox.token, "dialer_id": 101, "phones": PHONE}).json()["task_id"]
    sid = sandbox.add_call(task_id=task_id, outcome="answered")["session_id"]
    _settled(sandbox)
    assert receiver.json(0) == {"task_id": str(task_id), "session_id": str(sid), "result": "answered"}
