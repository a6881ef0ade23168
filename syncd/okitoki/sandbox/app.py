"""The sandbox as an ASGI application (Starlette): ``/api/v1/...`` and ``/_sandbox/...``."""

from __future__ import annotations

import contextlib
from typing import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import gateway
from .admin import admin_routes
from .api import OPERATIONS
from .problems import error_body
from .runtime import Sandbox
from .settings import SandboxSettings
from .state import SandboxState

__all__ = ["create_app"]

API_PREFIX = "/api/v1/"


async def _api(request: Request) -> Response:
    path = request.url.path
    name = path[len(API_PREFIX):].strip("/") if path.startswith(API_PREFIX) else path
    return await gateway.handle(request.app.state.sandbox, request, name, OPERATIONS.get(name))


async def _not_found(request: Request) -> Response:
    return JSONResponse(error_body(f"no such URL: {request.url.path}"), 404)


def create_app(state: SandboxState | None = None, *, settings: SandboxSettings | None = None,
               bootstrap: Callable[[SandboxState], None] | None = None) -> Starlette:
    """An ASGI app serving ``state`` (a new empty one when None).

    With ``settings.data_file`` the state is reloaded from that file now (when it exists;
    otherwise ``bootstrap`` fills a fresh state) and written back while the app runs.
    Background threads start and stop with the ASGI lifespan. ``app.state.sandbox`` is the
    :class:`~.runtime.Sandbox`.
    """
    settings = settings or (state.settings if state is not None else SandboxSettings())
    sandbox = Sandbox(state if state is not None else SandboxState(settings), settings, bootstrap)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        sandbox.start()
        try:
            yield
        finally:
            sandbox.stop()

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"]
    routes = [*admin_routes(),
              Route("/api/{rest:path}", _api, methods=methods),
              Route("/{rest:path}", _not_found, methods=methods)]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.sandbox = sandbox
    return app
