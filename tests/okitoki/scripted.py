"""A tiny scripted HTTP server on loopback: answers what a test queued, records what arrived.

Real sockets, real HTTP/1.1 (keep-alive), so the client under test runs its whole stack.
``clock`` stamps each arrival; tests that inject a fake clock into the client pass the same
clock here, so "no request before the server allowed it" is checked on one time line.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

__all__ = ["ScriptedServer", "Arrival", "Answer"]


@dataclass
class Arrival:
    method: str
    path: str
    query: dict[str, list[str]]
    form: dict[str, list[str]]
    body: bytes
    at: float
    headers: dict[str, str] = field(default_factory=dict)

    def variables(self) -> dict[str, Any]:
        """The Oki-Toki variables of the request, whichever form they came in."""
        flat = {k: v[0] for k, v in {**self.query, **self.form}.items()}
        if "json_request" in flat:
            return json.loads(flat["json_request"])
        return flat


@dataclass
class Answer:
    status: int = 200
    body: bytes | str | Any = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0          # seconds to wait before answering (timeouts)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


Script = Answer | Callable[[Arrival], Answer]


class ScriptedServer:
    """Queue answers with :meth:`answer`; when the queue is empty ``default`` is used."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.script: deque[Script] = deque()
        self.default: Script = Answer(200, {"result": "success"})
        self.arrivals: list[Arrival] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # else headers and body wait on delayed ACKs

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                form = parse_qs(body.decode()) if "form-urlencoded" in (
                    self.headers.get("Content-Type") or "") else {}
                arrival = Arrival(self.command, parts.path, parse_qs(parts.query), form, body,
                                  server.clock(), dict(self.headers))
                with server._lock:
                    server.arrivals.append(arrival)
                    script = server.script.popleft() if server.script else server.default
                answer = script(arrival) if callable(script) else script
                if answer.delay:
                    time.sleep(answer.delay)
                payload = answer.encoded()
                self.send_response(answer.status)
                headers = {"Content-Type": "application/json", **answer.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                try:
                    self.wfile.write(payload)
                except OSError:
                    pass

            do_GET = do_POST = do_PUT = do_DELETE = _serve

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def answer(self, *scripts: Script) -> "ScriptedServer":
        self.script.extend(scripts)
        return self

    def __enter__(self) -> "ScriptedServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FakeClock:
    """One fake time line for the client (sleep, monotonic, now) and the scripted server."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.t += seconds

    def now(self):  # noqa: ANN201 - datetime
        from datetime import UTC, datetime
        return datetime.fromtimestamp(self.t, UTC)
