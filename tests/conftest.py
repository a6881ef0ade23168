"""Fixtures every test folder may use: a running Oki-Toki sandbox over real loopback HTTP."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from syncd.apirecords import for_records
from syncd.testing.sandbox import SandboxHandle, running_sandbox, sandbox_process as _process


@pytest.fixture(autouse=True)
def _no_records_bound() -> Iterator[None]:
    """Each test starts with no API-journal records bound: a test calling an outbox handler
    directly (outside the push, which runs each in a context of its own) sets them in the
    test thread's context, and they would otherwise carry into the next test."""
    with for_records(()):
        yield


@pytest.fixture(autouse=True)
def _heap_unfrozen() -> Iterator[None]:
    """``syncd run`` freezes its start-up heap (syncd.heap); a test running it in this
    process must not leave the test runner's objects frozen for the tests after it."""
    yield
    if gc.get_freeze_count():
        gc.unfreeze()


@pytest.fixture
def sandbox() -> Iterator[SandboxHandle]:
    """A fresh sandbox (demo data) served from a thread of the test process."""
    with running_sandbox() as handle:
        yield handle


@pytest.fixture
def sandbox_process() -> Iterator[SandboxHandle]:
    """A fresh sandbox (demo data) running as a child process (``python -m``)."""
    with _process() as handle:
        yield handle
