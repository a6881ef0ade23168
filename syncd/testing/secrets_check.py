"""Catching secrets in what a connector logs or says (used by the conformance suite).

Two log paths are captured: structlog events (``structlog.testing.capture_logs``, the raw
event dicts, before any redaction processor: a connector must not log a secret at all) and
stdlib ``logging`` records (pytest's ``caplog`` at DEBUG). Records of ``httpx``/``httpcore``
(which log request URLs) are checked after :func:`syncd.redact.redact`, because the daemon's
log set-up redacts them and a connector cannot stop those libraries from logging.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Iterator
from urllib.parse import quote, quote_plus

import structlog

from ..redact import redact

__all__ = ["capture_everything", "assert_no_secrets"]

_LIBRARY_LOGGERS = ("httpx", "httpcore")


@contextlib.contextmanager
def capture_everything(caplog) -> Iterator[Callable[[], list[str]]]:
    """Capture structlog events and stdlib records; yields a function returning their texts."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    with structlog.testing.capture_logs() as events, caplog.at_level(logging.DEBUG):
        def texts() -> list[str]:
            out = [repr(event) for event in events]
            for record in caplog.records:
                text = formatter.format(record)
                if record.name.split(".")[0] in _LIBRARY_LOGGERS:
                    text = redact(text)
                out.append(text)
            return out

        yield texts


def assert_no_secrets(secrets: Iterable[str], texts: Iterable[str]) -> None:
    """Fail naming where a secret (or its URL-encoded form) appears; secrets < 4 chars ignored."""
    needles = set()
    for secret in secrets:
        if secret and len(secret) >= 4:
            needles |= {secret, quote(secret, safe=""), quote_plus(secret)}
    for text in texts:
        for needle in needles:
            if needle in text:
                shown = text.replace(needle, "<SECRET>")[:300]
                raise AssertionError(f"a secret leaked into: {shown!r}")
