"""The one error taxonomy of syncd, grouped by what the caller should do.

    SyncdError
    ├── ConfigError                 fatal at start; exit code 78 (EX_CONFIG)
    ├── RemoteError                 something a remote system answered or failed to answer
    │   ├── FatalRemoteError        do not retry: a person must act
    │   │   ├── AuthenticationError     401: token wrong, or the object does not exist
    │   │   ├── PermissionDenied        403: the token's user lacks a right
    │   │   ├── NotFound                404: wrong base URL or endpoint path
    │   │   ├── MethodNotAllowed        405: wrong HTTP method for the endpoint
    │   │   └── InvalidRequest          422 / other 4xx: the request is semantically wrong
    │   ├── RetriableRemoteError    retry with backoff
    │   │   ├── Throttled               429 (or a connector's own throttling signal); retry_after
    │   │   └── TransientError          5xx, timeouts, connection errors, malformed bodies
    │   └── BudgetExhausted         the daily request budget is spent; wait for tomorrow
    └── InvalidRecord               one record cannot be mapped or was refused: quarantine it

A field changed on both sides under a ``manual`` policy is no error: it is held for a person
(``syncd conflicts``, :mod:`syncd.engine.merge`).

Every message names the operation (and the HTTP status where there is one) and never
contains a secret: messages pass through :func:`syncd.redact.redact` before being stored.
"""

from __future__ import annotations

from datetime import timedelta

__all__ = [
    "SyncdError",
    "ConfigError",
    "RemoteError",
    "FatalRemoteError",
    "AuthenticationError",
    "PermissionDenied",
    "NotFound",
    "MethodNotAllowed",
    "InvalidRequest",
    "RetriableRemoteError",
    "Throttled",
    "TransientError",
    "BudgetExhausted",
    "InvalidRecord",
    "EX_CONFIG",
]

EX_CONFIG = 78


class SyncdError(Exception):
    """Base of every error syncd raises on purpose."""


class ConfigError(SyncdError):
    """The configuration is invalid. ``problems`` holds one line per problem."""

    def __init__(self, problems: list[str] | str, *, source: str | None = None) -> None:
        self.problems = [one_line(p) for p in ([problems] if isinstance(problems, str) else problems)]
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(prefix + p for p in self.problems))


def one_line(text: str) -> str:
    """``text`` with line breaks, control and bidi characters escaped (``\\n``, ``\\u202e``):
    a value quoted in a problem line cannot break the line or disguise it on a terminal."""
    return "".join(
        ch if ch.isprintable() or ch == " " else ch.encode("unicode_escape").decode("ascii")
        for ch in text) if not text.isprintable() else text


class RemoteError(SyncdError):
    """A remote system failed. ``system`` and ``operation`` say where; ``status`` is HTTP."""

    hint: str = ""

    def __init__(
        self,
        message: str,
        *,
        system: str = "",
        operation: str = "",
        status: int | None = None,
        hint: str | None = None,
        field_errors: dict[str, list[str]] | None = None,
    ) -> None:
        self.system = system
        self.operation = operation
        self.status = status
        if hint is not None:
            self.hint = hint
        self.field_errors = field_errors or {}
        self.message = message
        super().__init__(self._render())

    def _render(self) -> str:
        where = " ".join(p for p in (self.system, self.operation) if p)
        status = f" (HTTP {self.status})" if self.status is not None else ""
        text = f"{where}{status}: {self.message}" if where or status else self.message
        if self.field_errors:
            fields = "; ".join(f"{k}: {', '.join(map(str, v))}" for k, v in self.field_errors.items())
            text += f" [{fields}]"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class FatalRemoteError(RemoteError):
    """Retrying will not help; a person must change something."""


class AuthenticationError(FatalRemoteError):
    hint = "the token is wrong, or the object it names does not exist"


class PermissionDenied(FatalRemoteError):
    hint = "the token's user lacks a right this request needs"


class NotFound(FatalRemoteError):
    hint = "check the base URL or the endpoint override"


class MethodNotAllowed(FatalRemoteError):
    hint = "the endpoint does not accept this HTTP method; check the endpoint override"


class InvalidRequest(FatalRemoteError):
    """The remote refused the request's content (422 and other 4xx)."""


class RetriableRemoteError(RemoteError):
    """Worth retrying with backoff."""


class Throttled(RetriableRemoteError):
    """The remote asked us to slow down. ``retry_after`` is how long it asked us to wait."""

    def __init__(self, message: str, *, retry_after: timedelta | None = None, **kw) -> None:
        self.retry_after = retry_after
        super().__init__(message, **kw)


class TransientError(RetriableRemoteError):
    """5xx, timeouts, connection failures, malformed or truncated bodies."""


class BudgetExhausted(RemoteError):
    """The daily request budget of a system is spent; calls fail fast until it resets."""


class InvalidRecord(SyncdError):
    """One record cannot be mapped or was refused. It is quarantined; the batch goes on."""

    def __init__(self, reason: str, *, record_id: str | None = None) -> None:
        self.reason = reason
        self.record_id = record_id
        super().__init__(f"{record_id}: {reason}" if record_id else reason)
