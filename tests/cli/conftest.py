import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "config"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "daemon"))   # fakesyncer

from cfgkit import ENV, patch_connectors, reset_logging  # noqa: E402
from syncd.redact import forget_secrets  # noqa: E402


@pytest.fixture(autouse=True)
def _fakes(monkeypatch):
    patch_connectors(monkeypatch)
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    yield
    forget_secrets()
    reset_logging()
