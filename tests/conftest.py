"""Fixtures every test folder may use: a running Oki-Toki sandbox over real loopback HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from syncd.testing.sandbox import SandboxHandle, running_sandbox, sandbox_process as _process


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
