"""Running the Oki-Toki sandbox for tests: in a thread of the test process or as a subprocess.

    with running_sandbox(token="t0k3n", settle_delay="0s") as sb:
        httpx.post(f"{sb.url}/api/v1/dialers/create_task", data={"api_token": sb.token, ...})
        sb.add_call(task_id=1, outcome="answered")
        assert sb.requests()["total"] == 1

Both give a :class:`SandboxHandle`: ``.url`` (base URL, no trailing slash), ``.token`` (the
API token of company 1's user), ``.admin`` (an ``httpx.Client`` on the admin surface) and
helpers for the admin routes. A fresh sandbox holds the ``--seed demo`` data unless
``seed=None``: company 1 (Europe/Kyiv), dialers 101 (uniqueness on) and 102 (off), list 7
(blacklist) and three contacts.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx

from ..okitoki.sandbox.app import create_app
from ..okitoki.sandbox.runtime import Sandbox
from ..okitoki.sandbox.seed import bootstrap
from ..okitoki.sandbox.server import ThreadedServer
from ..okitoki.sandbox.settings import SandboxSettings, seconds_of

__all__ = ["SandboxHandle", "running_sandbox", "sandbox_process", "terminate", "DEFAULT_TOKEN"]

DEFAULT_TOKEN = "sandbox-token-5f1c0e7a"
_DURATIONS = {"settle_delay", "call_update_delay", "webhook_backoff", "webhook_timeout", "save_interval"}


@dataclass
class SandboxHandle:
    url: str
    token: str
    admin: httpx.Client
    #: Thread mode only: the live :class:`Sandbox` (state, journal, settings) for white-box checks.
    sandbox: Sandbox | None = None
    process: subprocess.Popen[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"{self.url}/api/v1"

    def _call(self, method: str, path: str, payload: Any = None, **params: Any) -> Any:
        response = self.admin.request(method, f"/_sandbox/{path}", json=payload, params=params or None)
        if response.status_code != 200:
            raise AssertionError(f"sandbox admin {method} {path}: {response.status_code} {response.text}")
        return response.json()

    def seed(self, payload: dict[str, Any] | None = None, **parts: Any) -> dict[str, list[int]]:
        """``POST /_sandbox/seed``; ``parts`` are top-level keys (dialers=[...], contacts=[...])."""
        return self._call("POST", "seed", {**(payload or {}), **parts})

    def add_call(self, **spec: Any) -> dict[str, Any]:
        """Simulate a finished call; returns it with its ``session_id``."""
        return self._call("POST", "calls", spec)

    def update_call(self, session_id: int, **changes: Any) -> dict[str, Any]:
        return self._call("POST", f"calls/{session_id}", changes)

    def state(self, company_id: int | None = None) -> dict[str, Any]:
        return self._call("GET", "state", **({"company_id": company_id} if company_id else {}))

    def requests(self, limit: int = 200) -> dict[str, Any]:
        return self._call("GET", "requests", limit=limit)

    def clear_requests(self) -> None:
        self._call("DELETE", "requests")

    def set_faults(self, faults: list[dict[str, Any]], seed: int | None = 0) -> dict[str, Any]:
        return self._call("POST", "faults", {"faults": faults, "seed": seed})

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def set_rate_limit(self, per_minute: int | None, retry_after_form: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {"per_minute": per_minute}
        if retry_after_form:
            body["retry_after_form"] = retry_after_form
        return self._call("POST", "rate-limit", body)

    def add_webhook(self, **rule: Any) -> dict[str, Any]:
        return self._call("POST", "webhooks", rule)["rules"][0]

    def deliveries(self) -> list[dict[str, Any]]:
        return self._call("GET", "webhooks/deliveries")["deliveries"]

    def edit_contact(self, contact_id: int, **changes: Any) -> dict[str, Any]:
        """Change a contact in "Oki-Toki" behind the daemon's back."""
        return self._call("POST", f"contacts/{contact_id}", changes)

    def delete_contact(self, contact_id: int) -> dict[str, Any]:
        """Delete a contact in "Oki-Toki": the export shows it once more with ``deleted: true``."""
        return self._call("DELETE", f"contacts/{contact_id}")

    def advance_clock(self, seconds: float) -> float:
        return self._call("POST", "clock", {"advance_seconds": seconds})["now"]

    def set_settings(self, **changes: Any) -> dict[str, Any]:
        return self._call("POST", "settings", changes)

    def reset(self) -> None:
        self._call("POST", "reset")


def terminate(proc: subprocess.Popen[Any], timeout: float = 30) -> None:
    """SIGTERM ``proc`` (a daemon or a sandbox: both stop cleanly on it); SIGKILL it if it has
    not exited within ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _settings(data_file: str | Path | None, admin_token: str | None, values: dict[str, Any]) -> SandboxSettings:
    values = {k: seconds_of(v) if k in _DURATIONS else v for k, v in values.items()}
    return SandboxSettings(data_file=Path(data_file) if data_file else None, admin_token=admin_token,
                           **values)


def _admin_client(url: str, admin_token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {admin_token}"} if admin_token else {}
    return httpx.Client(base_url=url, headers=headers, timeout=30.0)


@contextmanager
def running_sandbox(token: str = DEFAULT_TOKEN, *, seed: str | None = "demo",
                    data_file: str | Path | None = None, admin_token: str | None = None,
                    host: str = "127.0.0.1", port: int = 0, profile: Any = None,
                    **settings: Any) -> Iterator[SandboxHandle]:
    """A sandbox served by uvicorn in a thread, on an ephemeral loopback port.
    ``settings`` are :class:`SandboxSettings` fields (durations may be strings like ``"2s"``);
    ``profile`` (a :class:`~syncd.okitoki.profile.Profile`) is the API profile it serves."""
    conf = _settings(data_file, admin_token, settings)
    app = create_app(settings=conf, bootstrap=lambda st: bootstrap(st, token, seed == "demo"),
                     profile=profile)
    server = ThreadedServer(app, host, port)
    url = server.start()
    admin = _admin_client(url, admin_token)
    try:
        yield SandboxHandle(url, token, admin, sandbox=app.state.sandbox)
    finally:
        admin.close()
        server.stop()


def _read_url(proc: subprocess.Popen[str], timeout: float) -> str:
    found: list[str] = []

    def reader() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            match = re.search(r"listening on (http://\S+)", line)
            if match:
                found.append(match.group(1))
                return

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    thread.join(timeout)
    if not found:
        proc.kill()
        raise RuntimeError("the sandbox process did not print its URL")
    return found[0]


@contextmanager
def sandbox_process(token: str = DEFAULT_TOKEN, *, seed: str | None = "demo",
                    data_file: str | Path | None = None, admin_token: str | None = None,
                    settle_delay: str = "0s", extra_args: list[str] | None = None,
                    timeout: float = 20.0) -> Iterator[SandboxHandle]:
    """``python -m syncd.okitoki.sandbox --port 0 ...`` as a child process; stopped with
    SIGTERM (a clean stop, which writes the data file) when the block ends."""
    args = [sys.executable, "-m", "syncd.okitoki.sandbox", "--host", "127.0.0.1", "--port", "0",
            "--token", token, "--settle-delay", settle_delay]
    if seed:
        args += ["--seed", seed]
    if data_file:
        args += ["--data", str(data_file)]
    if admin_token:
        args += ["--admin-token", admin_token]
    args += list(extra_args or [])
    stderr = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    admin = None
    try:
        url = _read_url(proc, timeout)
        admin = _admin_client(url, admin_token)
        yield SandboxHandle(url, token, admin, process=proc)
    finally:
        if admin is not None:
            admin.close()
        terminate(proc, 15)
        stderr.close()
