"""The client against a misbehaving sandbox: injected faults, Retry-After, the rate limiter,
the daily budget, the request journal, and the token kept out of every trace."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import structlog

from syncd.config import OkitokiConfig
from syncd.errors import BudgetExhausted, TransientError
from syncd.http import MemoryBudget, RateLimiter
from syncd.model import JournalEntry
from syncd.model import TaskSpec
from syncd.okitoki import OkitokiClient

from .conftest import TOKEN, make_client


def inject(sandbox, *faults: dict) -> None:
    sandbox.post("/faults", {"seed": 7, "faults": list(faults)})


@pytest.mark.parametrize("kind,first_error", [
    ("truncated_json", "malformed response: truncated JSON"),
    ("html", "the body is an HTML page instead of JSON"),
    ("error_200", "error in a 200 answer: internal error, try again later"),
    ("status", "HTTP 500"),
])
def test_a_passing_fault_is_retried_and_each_attempt_journaled(okitoki_sandbox, kind, first_error) -> None:
    inject(okitoki_sandbox, {"kind": kind, "rate": 1, "count": 1, "operations": ["dialers/stat"]})
    journal: list[JournalEntry] = []
    client = make_client(okitoki_sandbox.url, attempts=3, journal=journal.append)
    assert set(client.dialers()) == {"101", "102"}
    assert [e.attempt for e in journal] == [1, 2]
    assert [e.operation for e in journal] == ["dialers", "dialers"]
    assert first_error in (journal[0].error or "") and journal[1].error is None
    assert journal[1].status == 200


def test_a_timeout_is_retried_once_the_server_answers_again(okitoki_sandbox) -> None:
    inject(okitoki_sandbox, {"kind": "timeout", "rate": 1, "count": 1, "seconds": 0.6})
    journal: list[JournalEntry] = []
    client = make_client(okitoki_sandbox.url, attempts=2, journal=journal.append, timeout=0.2)
    client.health_check()
    assert [e.status for e in journal] == [None, 200]
    assert "timed out" in (journal[0].error or "")
    deadline = time.monotonic() + 3     # let the held request finish inside this test
    while "504" not in okitoki_sandbox.requests()["by_status"] and time.monotonic() < deadline:
        time.sleep(0.05)


def test_a_fault_that_never_passes_ends_in_a_transient_error(okitoki_sandbox) -> None:
    inject(okitoki_sandbox, {"kind": "status", "status": 503, "rate": 1})
    with pytest.raises(TransientError, match=r"okitoki dialers \(HTTP 503\)"):
        make_client(okitoki_sandbox.url, attempts=3).dialers()
    assert okitoki_sandbox.requests()["total"] == 3


@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_retry_after_is_honoured_so_no_request_comes_early(okitoki_sandbox, form) -> None:
    inject(okitoki_sandbox, {"kind": "retry_after", "rate": 1, "count": 1, "seconds": 1, "form": form})
    client = make_client(okitoki_sandbox.url, attempts=2)
    started = time.monotonic()
    client.health_check()
    assert time.monotonic() - started >= 0.9
    report = okitoki_sandbox.requests()
    assert report["total"] == 2 and report["by_status"] == {"429": 1, "200": 1}
    assert report["early_retries"] == 0


def test_the_rate_limiter_keeps_every_thread_within_its_rate(okitoki_sandbox) -> None:
    per_minute, burst = 1200, 2                       # 20 a second
    client = make_client(okitoki_sandbox.url, limiter=RateLimiter(per_minute, burst=burst))

    def job() -> None:
        for _ in range(7):
            client.list_check("7", "+380501112233")

    threads = [threading.Thread(target=job) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = okitoki_sandbox.requests()
    arrivals = sorted(report["arrivals"])
    assert report["total"] == len(arrivals) == 21 and report["by_status"] == {"200": 21}
    rate = per_minute / 60
    for i in range(len(arrivals)):
        for j in range(i + 1, len(arrivals)):
            # burst + rate·span, with 50 ms (one request) for scheduling jitter between the
            # limiter and the server on a busy machine
            assert j - i + 1 <= burst + rate * (arrivals[j] - arrivals[i] + 0.05) + 1e-9


def test_a_spent_budget_stops_requests_before_they_cost_money(okitoki_sandbox) -> None:
    budget = MemoryBudget({"okitoki": 3})
    client = make_client(okitoki_sandbox.url, budget=budget)
    for _ in range(3):
        client.list_check("7", "+380501112233")
    started = time.monotonic()
    with pytest.raises(BudgetExhausted, match="daily request budget of 3 is spent"):
        client.list_check("7", "+380501112233")
    assert time.monotonic() - started < 0.1
    assert okitoki_sandbox.requests()["total"] == 3


@pytest.mark.parametrize("form", ["plain", "json_request"])
def test_the_token_never_reaches_logs_errors_or_the_journal(okitoki_sandbox, form) -> None:
    journal: list[JournalEntry] = []
    errors: list[str] = []
    inject(okitoki_sandbox, {"kind": "html", "rate": 1, "count": 1},
           {"kind": "truncated_json", "rate": 1, "count": 1})
    with structlog.testing.capture_logs() as logs:
        client = make_client(okitoki_sandbox.url, attempts=3, journal=journal.append, form=form)
        client.dialers()
        for bad in (TaskSpec(dialer_id="999", phones=("+380501112233",)),
                    TaskSpec(dialer_id="101", phones=("+380501112233",), priority=9)):
            try:
                client.create_task(bad)
            except Exception as exc:  # noqa: BLE001 - collecting every message
                errors.append(f"{exc!s} {exc!r}")
        list(client.call_log(okitoki_sandbox_now() - timedelta(hours=1), okitoki_sandbox_now()))
    assert logs and any(e["event"] == "okitoki.request" for e in logs)
    assert len(errors) == 2 and len(journal) >= 5
    traces = [repr(logs), *errors, *(repr(e) for e in journal)]
    assert all(TOKEN not in t for t in traces)


def okitoki_sandbox_now():
    from datetime import UTC, datetime
    return datetime.now(UTC)


def test_from_config_builds_a_working_client_with_overrides_and_a_token_file(okitoki_sandbox, tmp_path) -> None:
    token_file = tmp_path / "okitoki"
    token_file.write_text(TOKEN + "\n")
    cfg = OkitokiConfig(url=okitoki_sandbox.url + "/", api_token_file=str(token_file),
                        timezone="Europe/Kyiv", endpoints={"dialers": "/api/v1/dialers/stat"})
    journal: list[JournalEntry] = []
    with OkitokiClient.from_config(cfg, journal=journal.append) as client:
        assert set(client.dialers()) == {"101", "102"}
        assert client.remote.budget is not None and client.remote.budget.remaining("okitoki") == 19999
    assert [(e.system, e.operation, e.status) for e in journal] == [("okitoki", "dialers", 200)]
