"""Run a fake remote system on a loopback port, in a background thread, for one test.

Two kinds of application are accepted:

* an ASGI application (e.g. a ``starlette.applications.Starlette``), served by uvicorn;
* a plain :class:`http.server.BaseHTTPRequestHandler` subclass, served by the standard
  library's ``ThreadingHTTPServer`` (for fakes that need nothing more).

Either way the server listens on ``127.0.0.1`` on an ephemeral port chosen by the kernel, so
tests can run in parallel, and is stopped when the ``with`` block ends::

    with serve(app) as server:
        httpx.get(server.url + "/ping")
"""

from __future__ import annotations

import socket
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator

import uvicorn

__all__ = ["LoopbackServer", "serve"]


@dataclass
class LoopbackServer:
    """A running loopback server: ``url`` has no trailing slash (``http://127.0.0.1:PORT``)."""

    host: str
    port: int
    stop: Callable[[], None]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def _bound_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def _start_asgi(app: Any, startup_timeout: float) -> LoopbackServer:
    sock = _bound_socket()
    config = uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                              name="fake-asgi", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the fake ASGI server did not start")
        time.sleep(0.01)

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=5)
        sock.close()

    return LoopbackServer("127.0.0.1", sock.getsockname()[1], stop)


def _start_handler(handler: type[BaseHTTPRequestHandler]) -> LoopbackServer:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              name="fake-http", daemon=True)
    thread.start()

    def stop() -> None:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)

    return LoopbackServer("127.0.0.1", httpd.server_address[1], stop)


@contextmanager
def serve(app: Any, *, startup_timeout: float = 10.0) -> Iterator[LoopbackServer]:
    """Serve ``app`` (ASGI app or ``BaseHTTPRequestHandler`` subclass) on 127.0.0.1:<free port>."""
    if isinstance(app, type) and issubclass(app, BaseHTTPRequestHandler):
        server = _start_handler(app)
    else:
        server = _start_asgi(app, startup_timeout)
    try:
        yield server
    finally:
        server.stop()
