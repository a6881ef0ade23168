import pytest

from cfgkit import ENV, patch_connectors, reset_logging
from syncd.redact import forget_secrets


@pytest.fixture(autouse=True)
def _fakes(monkeypatch):
    patch_connectors(monkeypatch)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    yield
    forget_secrets()
    reset_logging()
