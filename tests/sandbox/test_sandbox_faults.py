"""Injected faults and the rate limit: seeded, countable, and visible in the request journal."""

from __future__ import annotations

import email.utils
import json
import time

import httpx
import pytest

from .conftest import api


def _statuses(sandbox, n):
    return [api(sandbox, "dialers/stat", "GET").status_code for _ in range(n)]


def test_a_seeded_fault_mix_repeats_exactly(sandbox):
    mix = [{"kind": "status", "status": 500, "rate": 0.3}, {"kind": "status", "status": 503, "rate": 0.2}]
    sandbox.set_faults(mix, seed=7)
    first = _statuses(sandbox, 30)
    sandbox.set_faults(mix, seed=7)
    assert _statuses(sandbox, 30) == first
    assert {500, 503, 200} == set(first)
    assert sandbox.requests()["by_status"]["500"] == 2 * first.count(500)


def test_count_limits_a_fault_to_the_next_n_requests(sandbox):
    sandbox.set_faults([{"kind": "status", "status": 503, "rate": 1, "count": 2}])
    assert _statuses(sandbox, 4) == [503, 503, 200, 200]
    sandbox.set_faults([{"kind": "status", "status": 500, "rate": 1}])
    sandbox.clear_faults()
    assert _statuses(sandbox, 1) == [200]


def test_faults_can_target_one_operation(sandbox):
    sandbox.set_faults([{"kind": "status", "status": 500, "rate": 1, "operations": ["calls/log"]}])
    assert api(sandbox, "calls/log", "GET").status_code == 500
    assert api(sandbox, "dialers/stat", "GET").status_code == 200


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_429_fault_carries_retry_after_in_both_forms(sandbox, form):
    sandbox.set_faults([{"kind": "retry_after", "seconds": 3, "form": form, "count": 1}])
    r = api(sandbox, "dialers/stat", "GET")
    assert r.status_code == 429 and r.json()["result"] == "error"
    value = r.headers["retry-after"]
    if form == "seconds":
        assert value == "3"
    else:
        wait = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        assert 1 <= wait <= 4.5


def test_malformed_answers(sandbox):
    sandbox.set_faults([{"kind": "truncated_json", "count": 1}])
    r = api(sandbox, "dialers/stat", "GET")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    with pytest.raises(ValueError):
        json.loads(r.text)
    sandbox.set_faults([{"kind": "html", "count": 1}])
    r = api(sandbox, "dialers/stat", "GET")
    assert r.status_code == 502 and r.text.startswith("<html>")
    sandbox.set_faults([{"kind": "error_200", "count": 1}])
    r = api(sandbox, "dialers/stat", "GET")
    assert r.status_code == 200 and "error" in r.json()


def test_timeout_holds_the_request_longer_than_the_client_waits(sandbox):
    sandbox.set_faults([{"kind": "timeout", "seconds": 1, "count": 1}])
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{sandbox.api_url}/dialers/create_task", timeout=0.3,
                   data={"api_token": sandbox.token, "dialer_id": 101, "phones": "380671112233"})
    assert sandbox.state()["tasks"] == []


def test_timeout_after_the_work_is_done_leaves_an_ambiguous_outcome(sandbox):
    sandbox.set_faults([{"kind": "timeout", "seconds": 1, "count": 1, "apply": True}])
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{sandbox.api_url}/dialers/create_task", timeout=0.3,
                   data={"api_token": sandbox.token, "dialer_id": 101, "phones": "380671112233"})
    assert [t["phones"] for t in sandbox.state()["tasks"]] == [["380671112233"]]


def test_latency_is_added(sandbox):
    sandbox.set_faults([{"kind": "latency", "seconds": 0.3, "count": 1}])
    started = time.monotonic()
    assert api(sandbox, "dialers/stat", "GET").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_rate_limit_answers_429_and_the_journal_spots_early_retries(sandbox):
    sandbox.set_rate_limit(5)
    statuses = _statuses(sandbox, 6)
    assert statuses == [200] * 5 + [429]
    report = sandbox.requests()
    refused = report["recent"][-1]
    assert refused["fault"] == "rate_limit" and refused["retry_after_until"] > refused["at"]
    assert report["early_retries"] == 0
    time.sleep(0.3)  # past the in-flight grace: this one was sent knowing it must wait
    assert _statuses(sandbox, 1) == [429]  # came back before Retry-After expired
    report = sandbox.requests()
    assert report["early_retries"] == 1 and report["max_per_minute"] == 7
    assert report["by_operation"] == {"dialers/stat": 7}


def test_a_request_already_in_flight_when_the_429_went_out_is_not_early(sandbox):
    sandbox.set_rate_limit(1)
    assert _statuses(sandbox, 3) == [200, 429, 429]   # the third follows within the grace
    assert sandbox.requests()["early_retries"] == 0


def test_rate_limit_retry_after_headers(sandbox):
    sandbox.set_rate_limit(1)
    ok = api(sandbox, "dialers/stat", "GET")
    assert ok.headers["x-ratelimit-remaining"] == "0"
    r = api(sandbox, "dialers/stat", "GET")
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
    sandbox.set_rate_limit(1, "http-date")
    api(sandbox, "dialers/stat", "GET")
    r = api(sandbox, "dialers/stat", "GET")
    assert email.utils.parsedate_to_datetime(r.headers["retry-after"]).timestamp() > time.time()
    sandbox.set_rate_limit(None)
    assert _statuses(sandbox, 3) == [200] * 3


def test_the_journal_never_holds_the_token(sandbox):
    api(sandbox, "dialers/stat", "GET")
    api(sandbox, "dialers/create_task", dialer_id=101, phones="380671112233")
    text = json.dumps(sandbox.requests())
    assert sandbox.token not in text
    assert sandbox.token not in json.dumps(sandbox.state())
