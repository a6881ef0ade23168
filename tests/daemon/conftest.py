import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "config"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cfgkit import patch_connectors, reset_logging  # noqa: E402
from syncd.redact import forget_secrets  # noqa: E402


@pytest.fixture(autouse=True)
def _fakes(monkeypatch):
    patch_connectors(monkeypatch)
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    yield
    forget_secrets()
    reset_logging()


class NotifySocket:
    """A fake systemd: an AF_UNIX datagram socket that records every notify message."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)
        self.messages: list[tuple[float, str]] = []

    def drain(self) -> list[str]:
        while True:
            try:
                data = self.sock.recv(4096)
            except (TimeoutError, BlockingIOError):
                break
            self.messages.append((time.monotonic(), data.decode()))
        return [m for _, m in self.messages]

    def fields(self) -> list[dict[str, str]]:
        return [dict(line.split("=", 1) for line in m.splitlines()) for m in self.drain()]

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path):
    s = NotifySocket(tmp_path / "notify.sock")
    yield s
    s.close()
