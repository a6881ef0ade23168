"""The sandbox as an ASGI application (Starlette): ``/api/v1/...`` and ``/_sandbox/...``."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from . import gateway
from .admin import admin_routes
from .problems import error_body
from .profiled import routes as profile_routes
from .runtime import Sandbox
from .settings import SandboxSettings
from .state import SandboxState

if TYPE_CHECKING:
    from ..profile import Profile

__all__ = ["create_app"]

API_PREFIX = "/api/v1/"


async def _api(request: Request) -> Response:
    path = request.url.path
    route = request.app.state.routes.get(path) or request.app.state.routes.get(path.rstrip("/"))
    if route is None:
        name = path[len(API_PREFIX):].strip("/") if path.startswith(API_PREFIX) else path
        return await gateway.handle(request.app.state.sandbox, request, name, None)
    return await gateway.handle(request.app.state.sandbox, request, *route)


async def _not_found(request: Request) -> Response:
    if request.url.path in request.app.state.routes:   # a profile's path outside /api/
        return await _api(request)
    return JSONResponse(error_body(f"no such URL: {request.url.path}"), 404)


def create_app(state: SandboxState | None = None, *, settings: SandboxSettings | None = None,
               bootstrap: Callable[[SandboxState], None] | None = None,
               profile: "Profile | None" = None) -> Starlette:
    """An ASGI app serving ``state`` (a new empty one when None).

    With ``settings.data_file`` the state is reloaded from that file now (when it exists;
    otherwise ``bootstrap`` fills a fresh state) and written back while the app runs.
    Background threads start and stop with the ASGI lifespan. ``app.state.sandbox`` is the
    :class:`~.runtime.Sandbox`. With ``profile`` it serves that API profile (paths,
    methods, names, dates; see :mod:`.profiled`) instead of the shipped one.
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
    app.state.routes = profile_routes(profile)
    return app
