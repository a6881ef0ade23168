"""Secrets in ``[crm.options]``: the value itself or a ``*_file`` holding it.

The configuration loader already reads ``*_file`` options; connectors call :func:`secret_from`
so a connector built directly (tests, third-party tooling) behaves the same: the same size
cap, timeout, regular-files-only and one-line rules (:mod:`syncd.secret_file`).
"""

from __future__ import annotations

from os import PathLike

from syncd.errors import ConfigError
from syncd.secret_file import read_secret_file

__all__ = ["secret_from"]


def secret_from(value: str | None, path: str | PathLike[str] | None, key: str) -> str | None:
    """``value``, or the one line of the file at ``path`` (e.g. a systemd credential).

    A file that cannot serve as a secret is a ConfigError naming ``crm.options.<key>_file``.
    """
    if not path:
        return value
    try:
        return read_secret_file(path)
    except ValueError as exc:
        raise ConfigError(f"crm.options.{key}_file: {exc}") from None
