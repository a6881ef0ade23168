"""Shapes the fake CRMs share: paging, tie order, the catch-all JSON fake, OAuth token rotation,
user edits that send webhooks, and the handle of a running fake.

Each fake keeps its vendor's documented answers; what is here is only the machinery around them.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Callable, Generic, Iterator, Sequence, TypeVar
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ._server import LoopbackServer, serve

__all__ = ["offset_page", "sort_scrambling_ties", "form_of", "new_token", "CatchAllFake",
           "UserEdits", "RunningFake", "serve_state"]

R = TypeVar("R")
S = TypeVar("S")


def offset_page(rows: Sequence[R], start: int, limit: int) -> tuple[Sequence[R], int | None]:
    """``rows[start:start + limit]`` and where the next page starts (None after the last one)."""
    return rows[start:start + limit], (start + limit if start + limit < len(rows) else None)


def sort_scrambling_ties(rows: list[R], key: Callable[[R], Any], *, ident: Callable[[R], Any],
                         reverse: bool = False) -> None:
    """Sort ``rows`` in place by ``key``; rows that tie come back in no promised order (here a
    stable scramble by ``ident``), as vendors that promise no order among ties answer."""
    rows.sort(key=lambda r: hashlib.md5(str(ident(r)).encode()).hexdigest())
    rows.sort(key=key, reverse=reverse)


def form_of(body: str) -> dict[str, str]:
    """A form-encoded body as a dict (the first value of each name)."""
    return {k: v[0] for k, v in parse_qs(body).items()}


def new_token(prefix: str, nbytes: int, into: set[str]) -> str:
    """A fresh random token, added to ``into``."""
    token = prefix + secrets.token_hex(nbytes)
    into.add(token)
    return token


class CatchAllFake:
    """A fake answering every path through one Starlette route (HubSpot, Pipedrive).

    Each request is recorded in ``requests`` as (method, path, body); a fault set with
    :meth:`fail_next` answers it instead (or, with a delay, after it was processed); the rest
    go to :meth:`_handle`. ``__init__`` sets ``lock``, ``requests``, ``faults``, ``tokens``,
    ``refresh_tokens`` and ``refresh_count``.
    """

    lock: Any
    requests: list[tuple[str, str, Any]]
    faults: list[dict[str, Any]]
    tokens: set[str]
    refresh_tokens: set[str]
    refresh_count: int
    url: str

    # -- admin ---------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget every record, fault, limit and counter; the server keeps running (so one
        server can serve a whole test module)."""
        url = getattr(self, "url", None)
        with self.lock:
            self.__init__()
        if url is not None:
            self.url = url

    def fail_next(self, path: str, status: int, body: dict | None = None,
                  headers: dict[str, str] | None = None, *, times: int = 1,
                  after_processing_delay: float = 0.0) -> None:
        """The next ``times`` requests whose path matches ``path`` (see :meth:`_fault_matches`)
        get this answer.

        With ``after_processing_delay`` the request is processed normally first and the answer
        is held back that long (to make the client time out: an ambiguous outcome).
        """
        with self.lock:
            self.faults.append(dict(path=path, status=status, body=body, headers=headers,
                                    times=times, delay=after_processing_delay))

    def grant_refresh_token(self, token: str) -> None:
        with self.lock:
            self.refresh_tokens.add(token)

    @contextmanager
    def running(self) -> Iterator[Any]:
        """Serve this fake on 127.0.0.1; ``self.url`` is its base URL."""
        with serve(self.app()) as server:
            self.url = server.url
            yield self

    # -- HTTP ----------------------------------------------------------------------------
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/{path:path}", self._endpoint,
                                       methods=["GET", "POST", "PATCH", "DELETE"])])

    async def _endpoint(self, request: Request) -> Response:
        raw = await request.body()
        body = json.loads(raw) if raw and request.headers.get("content-type", "").startswith(
            "application/json") else raw.decode()
        path = "/" + request.path_params["path"]
        with self.lock:
            self.requests.append((request.method, path, body))
            fault = self._take_fault(path)
            if fault is not None and not fault["delay"]:
                return JSONResponse(fault["body"] or {}, status_code=fault["status"],
                                    headers=fault["headers"])
            response = self._handle(request, path, body)
        if fault is not None:
            await asyncio.sleep(fault["delay"])
        return response

    def _take_fault(self, path: str) -> dict[str, Any] | None:
        for fault in self.faults:
            if fault["times"] > 0 and self._fault_matches(fault["path"], path):
                fault["times"] -= 1
                return fault
        return None

    def _fault_matches(self, fault_path: str, path: str) -> bool:
        return path == fault_path

    def _handle(self, request: Request, path: str, body: Any) -> Response:
        raise NotImplementedError

    def _rotate_refresh_token(self, spent: str, prefix: str = "") -> tuple[str, str]:
        """Spend the refresh token ``spent``: a new access token and a new refresh token."""
        self.refresh_tokens.discard(spent)
        self.refresh_count += 1
        access, refresh = f"{prefix}access-{uuid.uuid4().hex}", f"{prefix}refresh-{uuid.uuid4().hex}"
        self.tokens.add(access)
        self.refresh_tokens.add(refresh)
        return access, refresh


class UserEdits:
    """Admin-handle edits of a fake whose ``contacts`` are keyed by ID (Bitrix24, Kommo): each
    changes the data under ``lock`` and then sends the vendor's webhook, as a user's edit would."""

    lock: Any
    contacts: dict[int, dict[str, Any]]
    webhooks: Any

    def delete(self, cid: int) -> None:
        """Delete a contact as a user would (lists simply stop showing it)."""
        with self.lock:
            del self.contacts[cid]
        self.webhooks.emit("delete", cid)


@dataclass
class RunningFake(Generic[S]):
    """A fake served on loopback: its server and its state (the admin handle); ``url`` is the
    base URL (``http://127.0.0.1:PORT``)."""

    server: LoopbackServer
    state: S

    @property
    def url(self) -> str:
        return self.server.url


@contextmanager
def serve_state(running: Callable[[LoopbackServer, S], R], app: Any, state: S) -> Iterator[R]:
    """Serve ``app`` (built on ``state``) and yield ``running(server, state)``."""
    with serve(app) as server:
        yield running(server, state)
