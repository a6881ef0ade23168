"""Helpers for the sandbox tests: plain httpx calls and a loopback webhook receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from syncd.testing.sandbox import SandboxHandle


_http = httpx.Client(timeout=10)  # one client: building one per call costs an SSL context


def api(sb: SandboxHandle, operation: str, method: str = "POST", *, token: str | None = None,
        json_body: dict[str, Any] | None = None, **params: Any) -> httpx.Response:
    """One plain request to ``/api/v1/<operation>``: GET → query, POST → form (or JSON)."""
    params.setdefault("api_token", sb.token if token is None else token)
    url = f"{sb.api_url}/{operation}"
    if method == "GET":
        return _http.get(url, params=params)
    if json_body is not None:
        return _http.post(url, json={**params, **json_body})
    return _http.post(url, data=params)


class Receiver:
    """A loopback HTTP server that records requests and answers with scripted statuses."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []  # answered in order; 200 once exhausted
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                parts = urlsplit(self.path)
                receiver.requests.append({
                    "method": self.command, "path": parts.path, "query": dict(parse_qsl(parts.query)),
                    "content_type": self.headers.get("content-type", ""), "body": body})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = _handle

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def form(self, index: int) -> dict[str, str]:
        return dict(parse_qsl(self.requests[index]["body"]))

    def json(self, index: int) -> Any:
        return json.loads(self.requests[index]["body"])


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()
