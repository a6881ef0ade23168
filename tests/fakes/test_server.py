"""The loopback runner serves both ASGI apps and plain handlers on an ephemeral port."""

from http.server import BaseHTTPRequestHandler

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.fakes._server import serve


def test_asgi_app_is_served_on_a_free_loopback_port_and_stopped():
    app = Starlette(routes=[Route("/ping", lambda request: PlainTextResponse("pong"))])
    with serve(app) as server:
        assert server.url.startswith("http://127.0.0.1:")
        assert httpx.get(server.url + "/ping").text == "pong"
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/ping", timeout=1)


def test_plain_handler_is_served():
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"hi")

        def log_message(self, *args):
            pass

    with serve(Handler) as server:
        assert httpx.get(server.url + "/").text == "hi"
