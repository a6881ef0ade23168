"""The shared HTTP layer (syncd.http.RemoteSystem) over real loopback HTTP: retries, Retry-After,
the rate limiter, the daily budget, the request journal and redaction."""

from __future__ import annotations

import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from syncd import __version__
from syncd.errors import (
    AuthenticationError,
    BudgetExhausted,
    Throttled,
    TransientError,
)
from syncd.http import (
    MemoryBudget,
    RateLimiter,
    RemoteSystem,
    RetryPolicy,
    parse_retry_after,
)
from syncd.model import JournalEntry
from syncd.redact import forget_secrets

try:
    from okitoki.scripted import Answer, FakeClock, ScriptedServer
except ImportError:  # tests/ became a package
    from tests.okitoki.scripted import Answer, FakeClock, ScriptedServer  # type: ignore[no-redef]

SECRET = "sk-live-91b2c3d4e5f6"
OK = Answer(200, {"result": "success"})


def too_many(retry_after: str) -> Answer:
    return Answer(429, {"message": "slow down"}, {"Retry-After": retry_after})


@pytest.fixture(autouse=True)
def _fresh_secrets():
    yield
    forget_secrets()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(clock):
    with ScriptedServer(clock=clock.monotonic) as s:
        yield s


def remote(url: str, clock: FakeClock | None = None, **kw) -> RemoteSystem:
    """A RemoteSystem on one fake time line (sleep, clock, now and limiter share it)."""
    kw.setdefault("retry", RetryPolicy(attempts=4, base_delay=1.0, max_delay=8.0, jitter=0.0))
    if clock is not None:
        kw.setdefault("limiter", RateLimiter(None, clock=clock.monotonic, sleep=clock.sleep))
        kw.update(sleep=clock.sleep, now=clock.now)
    else:
        kw.setdefault("limiter", RateLimiter(None))
    return RemoteSystem(system="test", base_url=url, secrets=[SECRET], **kw)


# -- Retry-After ----------------------------------------------------------------------------

def test_retry_after_in_seconds_holds_the_next_request_back_that_long(server, clock) -> None:
    server.answer(too_many("7"), OK)
    response = remote(server.url, clock).request("GET", "/x", operation="read")
    assert response.status_code == 200
    first, second = server.arrivals
    assert second.at - first.at >= 7
    assert clock.sleeps == [7.0]


def test_retry_after_as_an_http_date_holds_the_next_request_back_until_then(server, clock) -> None:
    allowed_at: list[float] = []

    def until_later(arrival) -> Answer:
        allowed_at.append(clock.t + 12)
        return too_many(format_datetime(clock.now() + timedelta(seconds=12), usegmt=True))

    server.answer(until_later, OK)
    remote(server.url, clock).request("GET", "/x", operation="read")
    assert server.arrivals[1].at >= allowed_at[0]
    assert sum(clock.sleeps) == pytest.approx(12)


def test_a_retry_after_beyond_the_cap_is_capped(server, clock) -> None:
    server.answer(too_many("100000"), OK)
    policy = RetryPolicy(attempts=2, max_retry_after=20)
    remote(server.url, clock, retry=policy).request("GET", "/x", operation="read")
    assert clock.sleeps == [20.0]


def test_a_throttled_job_makes_every_job_of_that_system_wait(server, clock) -> None:
    limiter = RateLimiter(None, clock=clock.monotonic, sleep=clock.sleep)
    job_a = remote(server.url, clock, limiter=limiter, retry=RetryPolicy(attempts=1))
    job_b = remote(server.url, clock, limiter=limiter)
    server.answer(too_many("10"), OK)
    with pytest.raises(Throttled) as info:
        job_a.request("GET", "/a", operation="a")
    assert info.value.retry_after == timedelta(seconds=10)
    job_b.request("GET", "/b", operation="b")
    assert server.arrivals[1].at - server.arrivals[0].at >= 10


@pytest.mark.parametrize("value,expected", [
    ("120", timedelta(seconds=120)),
    ("0", timedelta(0)),
    ("Wed, 15 Nov 2023 12:00:30 GMT", timedelta(seconds=30)),
    ("Wed, 15 Nov 2023 11:00:00 GMT", timedelta(0)),     # in the past: go now
    ("soon", None), ("", None), (None, None),
])
def test_parse_retry_after_reads_both_forms(value, expected) -> None:
    now = datetime(2023, 11, 15, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after(value, now=now) == expected


# -- retries --------------------------------------------------------------------------------

def test_transient_failures_are_retried_with_growing_backoff_and_journaled(server, clock) -> None:
    journal: list[JournalEntry] = []
    server.answer(Answer(503, "busy"), Answer(502, "<html>bad gateway</html>"), OK)
    remote(server.url, clock, journal=journal.append).request("POST", "/w", operation="write")
    assert [e.attempt for e in journal] == [1, 2, 3]
    assert [e.status for e in journal] == [503, 502, 200]
    assert {e.operation for e in journal} == {"write"} and {e.system for e in journal} == {"test"}
    assert journal[0].error is not None and journal[2].error is None
    assert clock.sleeps == [1.0, 2.0]                   # base 1s, doubling, no jitter here


def test_a_fatal_error_is_raised_at_once_without_retrying(server, clock) -> None:
    server.answer(Answer(401, {"message": "bad token"}))
    with pytest.raises(AuthenticationError, match=r"test read \(HTTP 401\)"):
        remote(server.url, clock).request("GET", "/x", operation="read")
    assert len(server.arrivals) == 1 and clock.sleeps == []


def test_the_last_retriable_error_is_raised_when_attempts_run_out(server, clock) -> None:
    server.default = Answer(500, "down")
    with pytest.raises(TransientError, match=r"HTTP 500"):
        remote(server.url, clock).request("GET", "/x", operation="read")
    assert len(server.arrivals) == 4


def test_a_connectors_own_throttling_signal_is_retried_like_a_429(server, clock) -> None:
    def check(response: httpx.Response, operation: str) -> None:
        if response.status_code == 503 and b"QUERY_LIMIT_EXCEEDED" in response.content:
            raise Throttled("query limit exceeded", system="test", operation=operation,
                            status=503, retry_after=timedelta(seconds=2))

    server.answer(Answer(503, {"error": "QUERY_LIMIT_EXCEEDED"}), OK)
    remote(server.url, clock, check=check).request("GET", "/x", operation="read")
    assert server.arrivals[1].at - server.arrivals[0].at >= 2


def test_a_timeout_is_transient_and_retried() -> None:
    with ScriptedServer() as slow:
        slow.answer(Answer(200, {}, delay=0.5), OK)
        r = remote(slow.url, timeout=0.15, retry=RetryPolicy(attempts=2, base_delay=0.01, jitter=0))
        assert r.request("GET", "/x", operation="read").status_code == 200
        assert len(slow.arrivals) == 2


def test_a_refused_connection_is_transient_and_names_no_secret() -> None:
    with ScriptedServer() as gone:
        url = gone.url
    r = remote(url, retry=RetryPolicy(attempts=2, base_delay=0.01, jitter=0))
    journal: list[JournalEntry] = []
    r.journal = journal.append
    with pytest.raises(TransientError, match="connection failed") as info:
        r.request("GET", "/x", operation="read", params={"api_token": SECRET})
    assert SECRET not in str(info.value)
    assert [e.status for e in journal] == [None, None] and all(SECRET not in e.error for e in journal)


# -- rate limiter ---------------------------------------------------------------------------

def assert_within_rate(stamps: list[float], per_minute: float, burst: int, slack: float = 0.0) -> None:
    """No span of the timeline holds more requests than the bucket allows: burst + rate·span."""
    rate = per_minute / 60
    stamps = sorted(stamps)
    for i in range(len(stamps)):
        for j in range(i + 1, len(stamps)):
            allowed = burst + rate * (stamps[j] - stamps[i] + slack)
            assert j - i + 1 <= allowed + 1e-9, (i, j, stamps[i], stamps[j])


def test_the_limiter_never_lets_more_than_its_rate_through(clock) -> None:
    limiter = RateLimiter(60, burst=5, clock=clock.monotonic, sleep=clock.sleep)
    stamps = []
    for n in range(150):
        if n % 40 == 0:
            clock.sleep(17)         # idle spells refill the burst, never beyond it
        limiter.acquire()
        stamps.append(clock.t)
    assert_within_rate(stamps, 60, 5)
    assert stamps[-1] - stamps[0] >= (150 - 5 * 4) - 1   # it did have to wait


def test_a_full_minute_of_use_never_exceeds_the_limit_in_any_sliding_minute(clock) -> None:
    # The bucket alone would pass burst + 60 in the first minute: a remote counting a sliding
    # minute answers the 61st with 429.
    limiter = RateLimiter(60, burst=5, clock=clock.monotonic, sleep=clock.sleep)
    stamps = []
    for _ in range(200):
        limiter.acquire()
        stamps.append(clock.t)
    for i, t in enumerate(stamps):
        inside = [u for u in stamps[i:] if u < t + 60.0]
        assert len(inside) <= 60, (i, len(inside))
    assert 200 / (stamps[-1] - stamps[0]) >= 0.95          # and the limit is still used


def test_a_retry_after_block_holds_every_waiting_thread() -> None:
    limiter = RateLimiter(6000, burst=1)                     # 100 a second: no waits but the block
    limiter.acquire()
    limiter.block_for(0.4)
    blocked_at = time.monotonic()
    went: list[float] = []

    def worker() -> None:
        limiter.acquire()
        went.append(time.monotonic() - blocked_at)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(went) == 8 and min(went) >= 0.39


def test_jobs_on_several_threads_share_one_rate_over_real_http() -> None:
    per_minute, burst = 1200, 2                             # 20 requests a second
    with ScriptedServer() as srv:
        r = remote(srv.url, limiter=RateLimiter(per_minute, burst=burst))

        def job() -> None:
            for _ in range(6):
                r.request("GET", "/x", operation="read")

        threads = [threading.Thread(target=job) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        stamps = [a.at for a in srv.arrivals]
    assert len(stamps) == 24
    # Arrival times include scheduling jitter on a busy machine: 50 ms of slack (one request
    # at this rate). An unlimited client would send all 24 within a few milliseconds.
    assert_within_rate(stamps, per_minute, burst, slack=0.05)


# -- budget ---------------------------------------------------------------------------------

def test_a_spent_budget_fails_fast_without_sending_or_waiting(server, clock) -> None:
    budget = MemoryBudget({"test": 2})
    r = remote(server.url, clock, budget=budget)
    r.request("GET", "/x", operation="read")
    r.request("GET", "/x", operation="read")
    r.limiter.block_for(3600)          # even a blocked limiter must not make it wait
    with pytest.raises(BudgetExhausted, match="daily request budget of 2 is spent"):
        r.request("GET", "/x", operation="read")
    assert len(server.arrivals) == 2 and clock.sleeps == []
    assert budget.remaining("test") == 0


def test_every_retry_attempt_is_paid_from_the_budget(server, clock) -> None:
    budget = MemoryBudget({"test": 10})
    server.answer(Answer(500, "x"), OK)
    remote(server.url, clock, budget=budget).request("GET", "/x", operation="read")
    assert budget.remaining("test") == 8


# -- identity and redaction -----------------------------------------------------------------

def test_requests_name_syncd_and_its_version(server) -> None:
    remote(server.url).request("GET", "/x", operation="read")
    assert f"syncd/{__version__}" in server.arrivals[0].headers["User-Agent"]


def test_a_secret_echoed_by_the_server_is_masked_in_errors_and_the_journal(server, clock) -> None:
    journal: list[JournalEntry] = []
    server.default = Answer(500, f"upstream said: token={SECRET} Bearer {SECRET}")
    with pytest.raises(TransientError) as info:
        remote(server.url, clock, journal=journal.append).request(
            "GET", "/x", operation="read", headers={"Authorization": f"Bearer {SECRET}"})
    assert SECRET not in str(info.value) and "***" in str(info.value)
    assert journal and all(SECRET not in (e.error or "") for e in journal)


# -- requests that must not be repeated blindly ---------------------------------------------

CREATE = RetryPolicy(attempts=4, base_delay=1.0, jitter=0.0)


@pytest.mark.parametrize("failure", [Answer(500, "oops"), Answer(200, {}, delay=0.5)])
def test_an_ambiguous_failure_of_a_create_is_raised_at_once(failure) -> None:
    with ScriptedServer() as srv:
        srv.answer(failure, OK)
        with pytest.raises(TransientError):
            remote(srv.url, retry=CREATE, timeout=0.2).request("POST", "/create", operation="create",
                                                              idempotent=False)
        assert len(srv.arrivals) == 1


def test_a_throttled_create_is_retried_because_it_was_not_performed(server, clock) -> None:
    server.answer(too_many("2"), OK)
    remote(server.url, clock, retry=CREATE).request("POST", "/create", operation="create",
                                                     idempotent=False)
    assert len(server.arrivals) == 2


def test_a_create_told_to_wait_longer_than_its_claim_goes_back_to_the_outbox(server, clock) -> None:
    """A Retry-After past ``max_wait_not_idempotent`` is not waited out in place (the outbox's
    claim on the row would lapse and another instance could create the record too): the
    Throttled error is raised after one request, for the outbox to reschedule the row."""
    server.answer(too_many("90"), OK)
    with pytest.raises(Throttled) as info:
        remote(server.url, clock, retry=CREATE).request("POST", "/create", operation="create",
                                                         idempotent=False)
    assert len(server.arrivals) == 1 and info.value.retry_after.total_seconds() == 90


def test_a_read_told_to_wait_long_still_waits_in_place(server, clock) -> None:
    """The cap is for creates only: an idempotent read waits out the same Retry-After."""
    server.answer(too_many("90"), OK)
    remote(server.url, clock, retry=CREATE).request("GET", "/read", operation="read")
    assert len(server.arrivals) == 2


class HangUp:
    """A loopback server that reads each request in full, then closes the connection without
    answering: the request reached the remote, whatever it did with it is unknown."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.arrivals = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return                    # closed by the test
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                while len(body) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    body += chunk
                self.arrivals += 1

    def __enter__(self) -> "HangUp":
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def test_a_create_whose_connection_drops_after_sending_is_not_retried() -> None:
    """The remote may have made the record: raised at once, for the outbox to look it up."""
    with HangUp() as srv:
        with pytest.raises(TransientError, match="connection failed"):
            remote(srv.url, retry=RetryPolicy(attempts=3, base_delay=0.01, jitter=0)).request(
                "POST", "/create", operation="create", json={"name": "x"}, idempotent=False)
        assert srv.arrivals == 1


def test_an_idempotent_request_whose_connection_drops_is_retried() -> None:
    with HangUp() as srv:
        with pytest.raises(TransientError, match="connection failed"):
            remote(srv.url, retry=RetryPolicy(attempts=3, base_delay=0.01, jitter=0)).request(
                "POST", "/update", operation="update", json={"name": "x"})
        assert srv.arrivals == 3


def test_a_create_that_never_connected_is_retried() -> None:
    with ScriptedServer() as gone:
        url = gone.url
    journal: list[JournalEntry] = []
    with pytest.raises(TransientError, match="connection failed"):
        remote(url, retry=RetryPolicy(attempts=3, base_delay=0.01, jitter=0),
               journal=journal.append).request("POST", "/create", operation="create",
                                               idempotent=False)
    assert [e.attempt for e in journal] == [1, 2, 3]


# -- the direct request path (the client's transport, without its per-request layers) --------

def _sent_both_ways(server, monkeypatch, **kwargs) -> tuple:
    """The same request sent by the direct path and, with an environment proxy that does not
    apply to loopback, by the whole client: what arrived each time."""
    server.default = OK
    direct = remote(f"{server.url}/api/v1", headers={"X-Default": "d", "X-Both": "default"})
    assert direct._direct is not None
    direct.request("POST", "contacts/add", operation="write", **kwargs)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    whole = remote(f"{server.url}/api/v1", headers={"X-Default": "d", "X-Both": "default"})
    assert whole._direct is None, "an environment proxy must go through the client's routing"
    whole.request("POST", "contacts/add", operation="write", **kwargs)
    direct.close()
    whole.close()
    return server.arrivals[0], server.arrivals[1]


@pytest.mark.parametrize("body", [{"data": {"name": "Ann", "api_token": "t"}},
                                  {"json": {"name": "Ann", "phones": ["+380671234567"]}},
                                  {"content": b"raw bytes"}])
def test_the_direct_path_sends_what_the_client_would(server, monkeypatch, body) -> None:
    a, b = _sent_both_ways(server, monkeypatch, params={"page": 2, "q": "x y"},
                           headers={"X-Both": "request"}, **body)
    for arrival in (a, b):
        assert arrival.path == "/api/v1/contacts/add"
        assert arrival.query == {"page": ["2"], "q": ["x y"]}
        assert arrival.headers["X-Default"] == "d" and arrival.headers["X-Both"] == "request"
        assert f"syncd/{__version__}" in arrival.headers["User-Agent"]
    assert a.body == b.body and a.form == b.form
    same = ("Content-Type", "Content-Length", "Accept", "Accept-Encoding", "Host")
    assert {h: a.headers.get(h) for h in same} == {h: b.headers.get(h) for h in same}


def test_the_direct_path_answers_like_the_client(server) -> None:
    server.answer(Answer(200, {"id": 7}, {"Content-Type": "application/json; charset=utf-8"}))
    r = remote(server.url)
    response = r.request("GET", "/contacts/7", operation="read", params={"a": "1"})
    assert response.json() == {"id": 7}
    assert str(response.url) == f"{server.url}/contacts/7?a=1"
    assert response.request.method == "GET"
    assert response.is_closed and response.is_stream_consumed
    r.close()


def test_a_request_option_the_direct_path_does_not_know_goes_through_the_client(server) -> None:
    server.default = OK
    r = remote(server.url)
    r.request("GET", "/slow", operation="read", timeout=2.0)
    assert server.arrivals[0].path == "/slow"
    r.close()


def test_the_direct_path_keeps_the_clients_timeout() -> None:
    with socket.socket() as silent:                 # accepts, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        r = RemoteSystem(system="test", base_url=f"http://127.0.0.1:{silent.getsockname()[1]}",
                         timeout=0.3, limiter=RateLimiter(None),
                         retry=RetryPolicy(attempts=1))
        started = time.monotonic()
        with pytest.raises(TransientError, match="timed out"):
            r.request("GET", "/x", operation="read")
        assert time.monotonic() - started < 5
        r.close()
