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


# -- the sandbox (a faithful local Oki-Toki) ---------------------------------------------------

OTHER_TOKEN = "other-company-token-55e1"


class SandboxHandle:
    """A running sandbox: ``url`` for clients, ``admin`` (an httpx client) for /_sandbox."""

    def __init__(self, url: str) -> None:
        import httpx
        self.url = url
        self.admin = httpx.Client(base_url=url, timeout=10)

    def post(self, path: str, body: object = None) -> object:
        response = self.admin.post(f"/_sandbox{path}", json=body if body is not None else {})
        assert response.status_code < 300, response.text
        return response.json()

    def get(self, path: str, **params: object) -> object:
        response = self.admin.get(f"/_sandbox{path}", params=params)
        assert response.status_code < 300, response.text
        return response.json()

    def requests(self) -> dict:
        return self.get("/requests", limit=1000)  # type: ignore[return-value]


def _bootstrap(state) -> None:
    from syncd.okitoki.sandbox.seed import apply_seed
    apply_seed(state, {"companies": [
        {"id": 1, "name": "Acme", "timezone": "Europe/Kyiv",
         "users": [{"id": 1, "name": "API user", "token": TOKEN}, {"id": 2, "name": "Olha"}],
         "dialers": [{"id": 101, "name": "New leads", "unique": True},
                     {"id": 102, "name": "Callbacks", "unique": False}],
         "lists": [{"id": 7, "name": "Blacklist"}]},
        {"id": 2, "name": "Rival", "timezone": "America/Mexico_City",
         "users": [{"id": 3, "name": "Their API user", "token": OTHER_TOKEN}],
         "dialers": [{"id": 201, "name": "Theirs"}]},
    ]})


@pytest.fixture(scope="session")
def _sandbox_server() -> Iterator[SandboxHandle]:
    from syncd.okitoki.sandbox import SandboxSettings, create_app
    from syncd.okitoki.sandbox.server import ThreadedServer

    server = ThreadedServer(create_app(settings=SandboxSettings(), bootstrap=_bootstrap))
    handle = SandboxHandle(server.start())
    yield handle
    handle.admin.close()
    server.stop()


@pytest.fixture
def okitoki_sandbox(_sandbox_server: SandboxHandle) -> SandboxHandle:
    """The session's sandbox, reset to companies 1 (Acme, Kyiv) and 2 (Rival) for each test."""
    _sandbox_server.post("/reset")
    return _sandbox_server
