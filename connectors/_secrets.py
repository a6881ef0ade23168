"""Secrets in ``[crm.options]``: the value itself or a ``*_file`` holding it.

The configuration loader already reads ``*_file`` options; connectors call :func:`secret_from`
so a connector built directly (tests, third-party tooling) behaves the same: the same size
cap, timeout, regular-files-only and one-line rules (:mod:`syncd.secret_file`).
"""

from __future__ import annotations

from os import PathLike
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from syncd.errors import ConfigError
from syncd.secret_file import read_secret_file

__all__ = ["secret_from", "require_one_secret", "secret_or_file", "OneSecretOptions"]


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


def require_one_secret(value: SecretStr | None, path: str | PathLike[str] | None, key: str) -> None:
    """ValueError unless exactly one of ``<key>`` and ``<key>_file`` is set (for options
    validators)."""
    if (value is None) == (path is None):
        raise ValueError(f"set exactly one of {key} and {key}_file")


def secret_or_file(value: SecretStr | None, path: str | PathLike[str] | None, key: str) -> str:
    """The secret of an option pair ``<key>`` / ``<key>_file`` (see :func:`secret_from`)."""
    if value is not None:
        return value.get_secret_value()
    return secret_from(None, path, key) or ""


class OneSecretOptions(BaseModel):
    """``[crm.options]`` of a connector with one credential, given as the option named by
    ``SECRET`` or as ``<SECRET>_file`` (exactly one of them); :meth:`secret` reads it."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    SECRET: ClassVar[str]

    def _pair(self) -> tuple[Any, Any]:
        return getattr(self, self.SECRET), getattr(self, f"{self.SECRET}_file")

    @model_validator(mode="after")
    def _one_secret(self) -> "OneSecretOptions":
        require_one_secret(*self._pair(), self.SECRET)
        return self

    def secret(self) -> str:
        return secret_or_file(*self._pair(), self.SECRET)
