"""Fixtures for the Oki-Toki client tests: a scripted loopback server and client builders."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from syncd.http import RateLimiter, RemoteSystem, RetryPolicy
from syncd.okitoki import OkitokiClient
from syncd.redact import forget_secrets

from .scripted import ScriptedServer

TOKEN = "ok-token-7f3a9c21e5"


@pytest.fixture
def scripted() -> Iterator[ScriptedServer]:
    with ScriptedServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_secrets() -> Iterator[None]:
    yield
    forget_secrets()


def make_client(url: str, *, form: str = "plain", attempts: int = 1, journal=None,
                budget=None, limiter: RateLimiter | None = None, sleep=None, now=None,
                endpoints: dict[str, str] | None = None, timeout: float = 5.0,
                timezone: str = "Europe/Kyiv", token: str = TOKEN) -> OkitokiClient:
    extra = {}
    if sleep is not None:
        extra["sleep"] = sleep
    if now is not None:
        extra["now"] = now
    remote = RemoteSystem(system="okitoki", base_url=url, secrets=[token], timeout=timeout,
                          retry=RetryPolicy(attempts=attempts, base_delay=0.01, max_delay=0.05,
                                            jitter=0.0),
                          limiter=limiter or RateLimiter(None), journal=journal, budget=budget,
                          **extra)
    return OkitokiClient(remote, timezone=timezone, endpoints=endpoints, form=form)  # type: ignore[arg-type]
