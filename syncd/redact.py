"""Removing secrets from text before it reaches a log line, an error or the state database.

Secrets are registered once (at configuration load) and every place that renders text for
people or storage passes it through :func:`redact`. Values shorter than 4 characters are
not registered: they would mangle ordinary words and are no secret worth the name.
"""

from __future__ import annotations

import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = ["register_secret", "redact", "redact_value", "MASK", "forget_secrets", "is_secret_key"]

MASK = "***"
_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None

# Shapes of secrets that are recognisable without being registered.
_SHAPES = [
    re.compile(r"(?i)(api_token|token|access_token|refresh_token|api_key|apikey|password|secret)"
               r"(=|%3D|\"\s*:\s*\"|'\s*:\s*')([^&\s\"',}]+)"),
    re.compile(r"(?i)(bearer\s+)([A-Za-z0-9._~+/=-]+)"),
    # Bitrix24 inbound webhook: /rest/<user_id>/<secret>/
    re.compile(r"(/rest/\d+/)([A-Za-z0-9]{6,})(/|$)"),
]

# Names of configuration and option keys whose values are secrets (``token``, ``api_key``,
# ``client_secret``, ``webhook_password``); ``*_file`` keys name a file, not a secret.
_SECRET_KEY = re.compile(r"(?i)(^|_)(token|secret|password|passwd|key|apikey)$")


def is_secret_key(name: str) -> bool:
    """Whether a configuration key named ``name`` holds a secret (never show its value)."""
    return _SECRET_KEY.search(name) is not None


def register_secret(value: str | None) -> None:
    """Remember ``value`` (and its URL-encoded forms) so :func:`redact` masks it everywhere."""
    global _pattern
    if not value or len(value) < 4:
        return
    with _lock:
        _secrets.update({value, quote(value, safe=""), quote_plus(value)})
        alternatives = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in alternatives))


def forget_secrets() -> None:
    """For tests: drop every registered secret."""
    global _pattern
    with _lock:
        _secrets.clear()
        _pattern = None


def redact(text: str) -> str:
    """Return ``text`` with every registered secret and every secret-shaped value masked."""
    if not text:
        return text
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _SHAPES[0].sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)
    text = _SHAPES[1].sub(lambda m: f"{m.group(1)}{MASK}", text)
    text = _SHAPES[2].sub(lambda m: f"{m.group(1)}{MASK}{m.group(3)}", text)
    return text


def redact_value(value: Any) -> Any:
    """Redact strings inside nested dicts/lists/tuples (for structured log events)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(v) for v in value)
    if isinstance(value, BaseException):
        return redact(str(value))
    return value
