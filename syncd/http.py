"""The shared HTTP layer every remote system goes through.

One :class:`RemoteSystem` per remote (``okitoki``, ``crm``) owns an ``httpx.Client`` with
timeouts, limits and a User-Agent, and wraps every request with, in order:

1. the daily :class:`RequestBudget` (fails fast with ``BudgetExhausted`` when spent),
2. the process-wide :class:`~syncd.ratelimit.RateLimiter` of that system (requests per
   minute, small burst, at most the rate in any sliding minute, and a "blocked until" set by
   any ``Retry-After`` the remote sent, so every job and request worker waits),
3. retries with exponential backoff and jitter (tenacity, :func:`syncd.backoff.backoff_seconds`)
   for transient failures and throttling; ``Retry-After`` (seconds or an HTTP date) is
   honoured up to a cap; a request that is not idempotent (``idempotent=False``, a create)
   is retried only when the failure proves the remote did nothing,
4. the request journal hook (time, system, operation, status, duration, attempt, and the
   record ids the caller bound with :func:`syncd.apirecords.about`),
5. mapping of the response to the taxonomy in :mod:`syncd.errors`, with secrets redacted.

Connectors receive a ``RemoteSystem`` (or build one with :func:`remote_system`) and may pass
``transport=`` (an ``httpx.MockTransport`` in unit tests, nothing for real loopback tests).

A request goes straight to the client's transport (its connection pool) with a request
built as the client would build it (:class:`_Direct`): the client's cookie jar, redirect and
auth layers do nothing for these APIs (token auth, no redirects followed, no cookies) and cost
a fifth of a loopback request's CPU. When an environment proxy applies, the whole client is
used, so ``HTTPS_PROXY``/``NO_PROXY`` keep working.
"""

from __future__ import annotations

import email.utils
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Callable, Protocol

import httpx
import tenacity

from . import __version__
from .apirecords import bound_records
from .backoff import backoff_seconds
from .errors import (
    AuthenticationError,
    BudgetExhausted,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PermissionDenied,
    RemoteError,
    RetriableRemoteError,
    Throttled,
    TransientError,
)
from .model import JournalEntry
from .ratelimit import RateLimiter, limiter_for
from .redact import redact, register_secret

__all__ = [
    "USER_AGENT",
    "RetryPolicy",
    "RateLimiter",
    "RequestBudget",
    "MemoryBudget",
    "RemoteSystem",
    "parse_retry_after",
    "error_for_status",
    "limiter_for",
]

USER_AGENT = f"syncd/{__version__} (+https://github.com/syncd/syncd)"


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to retry. Durations in seconds."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 30.0
    max_retry_after: float = 300.0  # a Retry-After longer than this is capped to it
    jitter: float = 0.5
    #: A request that is not idempotent (a create) waits in place at most this long in all;
    #: a longer wait goes back to the outbox, which reschedules the row without counting an
    #: attempt. The outbox's claim on a row lasts 2 minutes: waiting past it here would let
    #: another instance take the row over, find nothing yet and create the record again.
    max_wait_not_idempotent: float = 60.0


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> timedelta | None:
    """``Retry-After`` as delta-seconds or an HTTP date → a non-negative timedelta."""
    if not value:
        return None
    value = value.strip()
    try:
        return timedelta(seconds=max(0.0, float(value)))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    now = now or datetime.now(UTC)
    return max(timedelta(0), when - now)


class RequestBudget(Protocol):
    """A daily request budget per system. The daemon's implementation persists it."""

    def spend(self, system: str, n: int = 1) -> None:
        """Count ``n`` requests; raise ``BudgetExhausted`` if that would pass the limit."""

    def remaining(self, system: str) -> int | None:
        """Requests left today, or None when unlimited."""


class MemoryBudget:
    """An in-memory :class:`RequestBudget` (per UTC day); for tests and one-shot commands."""

    def __init__(self, limits: dict[str, int | None], *, today: Callable[[], date] = lambda: datetime.now(UTC).date()) -> None:
        self.limits = dict(limits)
        self._today = today
        self._used: dict[tuple[str, date], int] = {}
        self._lock = threading.Lock()

    def spend(self, system: str, n: int = 1) -> None:
        limit = self.limits.get(system)
        with self._lock:
            key = (system, self._today())
            used = self._used.get(key, 0)
            if limit is not None and used + n > limit:
                raise BudgetExhausted(f"daily request budget of {limit} is spent", system=system)
            self._used[key] = used + n

    def remaining(self, system: str) -> int | None:
        limit = self.limits.get(system)
        if limit is None:
            return None
        return max(0, limit - self._used.get((system, self._today()), 0))


Journal = Callable[[JournalEntry], None]
# Sees every response before the status mapping; raises a taxonomy error or returns None.
ResponseCheck = Callable[[httpx.Response, str], None]

_STATUS_ERRORS: dict[int, type[RemoteError]] = {
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    405: MethodNotAllowed,
}


def error_for_status(response: httpx.Response, *, system: str, operation: str,
                     message: str | None = None,
                     field_errors: dict[str, list[str]] | None = None,
                     hints: dict[int, str] | None = None,
                     now: datetime | None = None) -> RemoteError | None:
    """The taxonomy error for a non-2xx response (None for 2xx). The message is redacted.

    ``now`` is the clock an HTTP-date ``Retry-After`` is measured against (default: now).
    """
    status = response.status_code
    if status < 400:
        return None
    text = redact(message or _short_body(response))
    hint = (hints or {}).get(status)
    kw: dict[str, Any] = dict(system=system, operation=operation, status=status, hint=hint,
                              field_errors=field_errors)
    if status == 429:
        return Throttled(text, retry_after=parse_retry_after(response.headers.get("Retry-After"), now=now),
                         **kw)
    if status >= 500:
        return TransientError(text, **kw)
    cls = _STATUS_ERRORS.get(status, InvalidRequest)
    return cls(text, **kw)


def _short_body(response: httpx.Response) -> str:
    try:
        body = response.text
    except Exception:  # undecodable bytes
        body = ""
    body = " ".join(body.split())
    if body.lower().startswith(("<!doctype", "<html")):
        return f"HTML error page ({response.reason_phrase or 'no reason'})"
    return body[:300] or (response.reason_phrase or "empty body")


def _worth_retrying(exc: BaseException, *, idempotent: bool) -> bool:
    """Whether to send the request again: any retriable error of an idempotent request; for
    one that is not, only a failure proving the remote did nothing: throttling (a 429, or
    what the system's check knows to be throttling) or no connection ever made. A timeout
    after sending, a dropped connection, a 5xx or a garbled answer may hide a done write."""
    if not isinstance(exc, RetriableRemoteError):
        return False
    if idempotent or isinstance(exc, Throttled):
        return True
    return getattr(exc, "request_sent", True) is False


def _default_check(response: httpx.Response, operation: str) -> None:
    return None


class _Direct:
    """Sends a request on the client's own transport, bypassing the client's per-request
    layers (URL merging, cookie jar, auth and redirect handling, event hooks), none of which
    these APIs use. The request is the one ``httpx.Client.build_request`` makes: the client's
    base URL joined with the path, its default headers under the request's, its timeouts."""

    DIRECT_KWARGS = frozenset({"params", "data", "json", "content", "files", "headers"})
    MAX_URLS = 1024

    def __init__(self, client: httpx.Client, transport: httpx.BaseTransport) -> None:
        self.client = client
        self.transport = transport
        self.extensions = {"timeout": client.timeout.as_dict()}
        self._urls: dict[str, httpx.URL] = {}

    @staticmethod
    def applies() -> bool:
        """False when an environment proxy may apply (the client routes those itself)."""
        return not any(k in urllib.request.getproxies() for k in ("http", "https", "all"))

    def _url(self, path: str) -> httpx.URL:
        url = self._urls.get(path)
        if url is None:
            if len(self._urls) >= self.MAX_URLS:
                self._urls.clear()
            url = self._urls[path] = self.client.build_request("GET", path).url
        return url

    def request(self, method: str, path: str, kwargs: dict[str, Any]) -> httpx.Response:
        if not self.DIRECT_KWARGS.issuperset(kwargs):
            return self.client.request(method, path, **kwargs)
        headers: Any = self.client.headers
        if kwargs.get("headers"):
            headers = httpx.Headers(self.client.headers)
            headers.update(kwargs["headers"])
        request = httpx.Request(method, self._url(path), params=kwargs.get("params"),
                                data=kwargs.get("data"), json=kwargs.get("json"),
                                content=kwargs.get("content"), files=kwargs.get("files"),
                                headers=headers, extensions=self.extensions)
        response = self.transport.handle_request(request)
        response.request = request
        try:
            response.read()
        except BaseException:
            response.close()
            raise
        return response


@dataclass
class RemoteSystem:
    """Every request to one remote system goes through here. Thread-safe."""

    system: str
    base_url: str
    secrets: list[str] = field(default_factory=list)
    timeout: float = 15.0
    connect_timeout: float = 5.0
    requests_per_minute: float | None = None
    burst: int = 5
    budget: RequestBudget | None = None
    journal: Journal | None = None
    retry: RetryPolicy = RetryPolicy()
    transport: httpx.BaseTransport | None = None
    check: ResponseCheck = _default_check  # raise a taxonomy error for 200-with-error bodies
    hints: dict[int, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    sleep: Callable[[float], None] = time.sleep
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    limiter: RateLimiter | None = None
    max_connections: int = 10

    def __post_init__(self) -> None:
        for secret in self.secrets:
            register_secret(secret)
        if self.limiter is None:
            self.limiter = limiter_for(self.system, self.requests_per_minute, self.burst)
        limits = httpx.Limits(max_connections=self.max_connections,
                              max_keepalive_connections=self.max_connections)
        transport = self.transport or httpx.HTTPTransport(limits=limits)
        self.client = httpx.Client(
            base_url=self.base_url,
            timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
            limits=limits,
            headers={"User-Agent": USER_AGENT, **self.headers},
            transport=transport,
        )
        self._direct = _Direct(self.client, transport) if _Direct.applies() else None

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "RemoteSystem":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the one entry point -------------------------------------------------------------
    def request(self, method: str, path: str, *, operation: str, idempotent: bool = True,
                retry: RetryPolicy | None = None, **kwargs: Any) -> httpx.Response:
        """Send one logical request (retried as the policy says); return a 2xx response.

        ``idempotent=False`` for a request that must not be repeated blindly (a create with no
        idempotency key): it is retried only when the failure proves nothing was done
        (throttling, no connection made); after a timeout, a 5xx or a garbled answer the
        error is raised at once, so the caller can look the record up before sending again.
        Raises the taxonomy errors of :mod:`syncd.errors`; messages never contain secrets.
        ``kwargs`` go to ``httpx.Client.request`` (params, data, json, headers, ...).
        """
        policy = retry or self.retry
        attempt_no = 0

        def attempt() -> httpx.Response:
            nonlocal attempt_no
            attempt_no += 1
            return self._send_once(method, path, operation, attempt_no, kwargs, policy)

        retrying = tenacity.Retrying(
            stop=self._stop_strategy(policy, idempotent=idempotent),
            retry=tenacity.retry_if_exception(
                lambda exc: _worth_retrying(exc, idempotent=idempotent)),
            wait=self._wait_strategy(policy),
            sleep=self.sleep,
            reraise=True,
        )
        return retrying(attempt)

    def _stop_strategy(self, policy: RetryPolicy, *,
                       idempotent: bool) -> Callable[[tenacity.RetryCallState], bool]:
        """Stop after ``policy.attempts``; a request that is not idempotent also stops when
        the next wait would take it past ``policy.max_wait_not_idempotent`` in all."""
        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= max(1, policy.attempts):
                return True
            if idempotent:
                return False
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, Throttled) and exc.retry_after is not None:
                ahead = min(exc.retry_after.total_seconds(), policy.max_retry_after)
            else:
                ahead = policy.max_delay
            return (state.seconds_since_start or 0.0) + ahead > policy.max_wait_not_idempotent
        return stop

    def _wait_strategy(self, policy: RetryPolicy) -> Callable[[tenacity.RetryCallState], float]:
        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            if isinstance(exc, Throttled) and exc.retry_after is not None:
                # The limiter was blocked for this long already; waiting here too keeps this
                # caller from racing ahead of the block on another thread's clock.
                return min(exc.retry_after.total_seconds(), policy.max_retry_after)
            return backoff_seconds(state.attempt_number - 1, base=policy.base_delay,
                                   cap=policy.max_delay, jitter=policy.jitter)
        return wait

    def _send_once(self, method: str, path: str, operation: str, attempt: int,
                   kwargs: dict[str, Any], policy: RetryPolicy) -> httpx.Response:
        if self.budget is not None:
            self.budget.spend(self.system)
        assert self.limiter is not None
        self.limiter.acquire()
        started = time.monotonic()
        status: int | None = None
        error: RemoteError | None = None
        try:
            try:
                if self._direct is not None:
                    response = self._direct.request(method, path, kwargs)
                else:
                    response = self.client.request(method, path, **kwargs)
            except httpx.TimeoutException as exc:
                error = TransientError(f"timed out ({type(exc).__name__})", system=self.system,
                                       operation=operation)
                error.request_sent = not isinstance(exc, (httpx.ConnectTimeout, httpx.PoolTimeout))
                raise error from None
            except httpx.TransportError as exc:
                error = TransientError(f"connection failed: {redact(str(exc)) or type(exc).__name__}",
                                       system=self.system, operation=operation)
                error.request_sent = not isinstance(exc, httpx.ConnectError)
                raise error from None
            status = response.status_code
            # The system's own check sees every response first: it knows its error bodies
            # (field errors, 200 with an error key, 503 that really means throttling).
            try:
                self.check(response, operation)
            except RemoteError as exc:
                error = exc
            if error is None:
                error = error_for_status(response, system=self.system, operation=operation,
                                         hints=self.hints, now=self.now())
            if isinstance(error, Throttled) and error.retry_after is not None:
                self.limiter.block_for(min(error.retry_after.total_seconds(),
                                           policy.max_retry_after))
            if error is not None:
                raise error
            return response
        finally:
            if self.journal is not None:
                self.journal(JournalEntry(
                    at=self.now(), system=self.system, operation=operation, method=method,
                    status=status, duration_ms=int((time.monotonic() - started) * 1000),
                    attempt=attempt, error=redact(str(error)) if error else None,
                    records=bound_records(),
                ))
