"""``syncd sandbox --replay DIR``: answer with what ``syncd probe --save DIR`` recorded.

Each recorded exchange (``NN-<operation>.json``: the request's method, path and masked
variables; the answer's status, content type and masked body: ``body`` when it was JSON,
``text`` otherwise) is served back for the same
method and path, in the order recorded (the last one repeats). So a mismatch seen on a real
account is reproduced here: ``syncd probe`` against the replay shows the same table.
A request for a method and path that was not recorded gets 404.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ...errors import ConfigError
from .problems import error_body

__all__ = ["load_replay", "replay_app", "EXCHANGE_GLOB"]

EXCHANGE_GLOB = "[0-9][0-9]-*.json"


def load_replay(directory: str | Path) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """The recorded answers by (method, path). ConfigError when DIR holds none or one is bad."""
    folder = Path(directory)
    files = sorted(folder.glob(EXCHANGE_GLOB)) if folder.is_dir() else []
    if not files:
        raise ConfigError(f'--replay: "{directory}" holds no recorded exchanges ({EXCHANGE_GLOB}); '
                          "record them with `syncd probe --save DIR`")
    answers: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for file in files:
        try:
            exchange = json.loads(file.read_text(encoding="utf-8"))
            request, response = exchange["request"], exchange["response"]
            key = (str(request["method"]).upper(), str(request["path"]))
            answers.setdefault(key, []).append(response)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ConfigError(f'--replay: "{file}" is not a recorded exchange ({exc})') from None
    return answers


def replay_app(answers: dict[tuple[str, str], list[dict[str, Any]]]) -> Starlette:
    """An ASGI app serving ``answers`` (see :func:`load_replay`)."""
    served: dict[tuple[str, str], int] = {}

    async def answer(request: Request) -> Response:
        key = (request.method, request.url.path)
        recorded = answers.get(key)
        if not recorded:
            return JSONResponse(error_body(f"not in the recording: {request.method} {request.url.path}"), 404)
        index = served.get(key, 0)
        served[key] = index + 1
        response = recorded[min(index, len(recorded) - 1)]
        kind = response.get("content_type") or "application/json"
        text = response["text"] if "text" in response else json.dumps(response.get("body"), ensure_ascii=False)
        return Response(text, int(response.get("status", 200)), media_type=kind)

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
    return Starlette(routes=[Route("/{rest:path}", answer, methods=methods)])
