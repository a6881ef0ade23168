import pytest

from syncd.testing.sandbox import sandbox_process


@pytest.fixture
def sandbox_proc():
    """The sandbox in its own process, as Oki-Toki is to the daemon."""
    with sandbox_process(token="system-test-token-7c1d", seed="demo", settle_delay="0s") as sb:
        yield sb
