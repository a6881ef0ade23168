"""Secrets in ``[crm.options]``: the value itself or a ``*_file`` holding it.

The configuration loader already reads ``*_file`` options; connectors call :func:`secret_from`
so a connector built directly (tests, third-party tooling) behaves the same.
"""

from __future__ import annotations

from pathlib import Path

from syncd.errors import ConfigError

__all__ = ["secret_from"]


def secret_from(value: str | None, path: str | None, key: str) -> str | None:
    """``value``, or the stripped content of the file at ``path`` (e.g. a systemd credential).

    An unreadable file is a ConfigError naming ``crm.options.<key>_file``.
    """
    if not path:
        return value
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"crm.options.{key}_file: cannot read {path} ({exc.strerror})") from None
