"""Errors the sandbox answers with, in the P error body format of ``okitoki-api.md``:
``{"result": "error", "message": "...", "errors": {field: [...]}}`` with the documented codes.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ApiProblem", "unauthorized", "invalid", "error_body"]


class ApiProblem(Exception):
    """An error response: HTTP ``status``, a ``message`` and optional field ``errors``."""

    def __init__(self, status: int, message: str, errors: dict[str, list[str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or {}
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return error_body(self.message, self.errors)


def error_body(message: str, errors: dict[str, list[str]] | None = None) -> dict[str, Any]:
    return {"result": "error", "message": message, "errors": errors or {}}


def unauthorized(what: str | None = None) -> ApiProblem:
    """401: Oki-Toki answers the same for a wrong token and for an object it cannot see."""
    message = "token wrong, or the object does not exist"
    if what:
        message = f"{message} ({what})"
    return ApiProblem(401, message)


def invalid(errors: dict[str, list[str]], message: str | None = None) -> ApiProblem:
    """422 with field errors."""
    if message is None:
        first = next(iter(errors.items()), None)
        message = f"{first[0]}: {first[1][0]}" if first else "the request is invalid"
    return ApiProblem(422, message, errors)
