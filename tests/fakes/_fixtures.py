"""Fixtures the raw-HTTP tests of a fake share."""

from __future__ import annotations

from typing import Any, Callable, ContextManager

import httpx
import pytest

__all__ = ["module_fake_fixtures"]


def module_fake_fixtures(running: Callable[[], ContextManager[Any]],
                         headers: dict[str, str]) -> tuple[Any, Any]:
    """Fixtures ``server`` (one fake started by ``running()`` for the whole module) and ``fake``
    (that fake reset for one test, with ``fake.client`` an httpx client sending ``headers``).
    Use: ``server, fake = module_fake_fixtures(running_x, headers)``."""

    @pytest.fixture(scope="module")
    def server():
        with running() as fake:
            yield fake

    @pytest.fixture
    def fake(server):
        server.reset()
        with httpx.Client(base_url=server.url, headers=headers) as client:
            server.client = client
            yield server

    return server, fake
