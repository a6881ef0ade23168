"""TOML → validated configuration (the models and the keys are :mod:`syncd.config_models`).

``load_config(path)`` reads the file, resolves secret references (``${ENV}``, ``*_file``),
validates everything at once and raises :class:`syncd.errors.ConfigError` with one line per
problem, each naming the file and the key path (``dialer[1].ttl: "3x" is not a duration``).
Unknown keys are errors, with a "did you mean" where a known key is close.
Durations are strings at the edge (``"30s"``, ``"10m"``, ``"3d"``) and ``timedelta`` inside.
"""

from __future__ import annotations

import os
import re
import stat
import tomllib
from pathlib import Path
from typing import Any, Callable, Mapping

from pydantic import TypeAdapter, ValidationError

from . import config_checks
from .config_models import (CallsConfig, Config, ContactsConfig, CrmConfig, DaemonConfig,
                            DialerRule, DoNotCallConfig, FieldMap, GuardConfig, OkitokiConfig,
                            VerifyConfig, format_validation_errors, key_path, model_at)
from .config_values import MAX_DEPTH, too_deep_at
from .durations import parse_duration
from .errors import ConfigError
from .redact import is_secret_key, register_secret

# The models are re-exported: ``from syncd.config import Config`` is how the rest imports them.
__all__ = ["Config", "DaemonConfig", "OkitokiConfig", "CrmConfig", "ContactsConfig", "FieldMap",
           "DialerRule", "CallsConfig", "DoNotCallConfig", "GuardConfig", "VerifyConfig",
           "parse_duration", "load_config", "validate_config_dict", "format_validation_errors",
           "model_at", "DEFAULT_CONFIG_PATH"]

DEFAULT_CONFIG_PATH = "/etc/syncd/config.toml"

Warn = Callable[[str], None]
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _default_warn(line: str) -> None:
    import structlog

    structlog.get_logger("syncd.config").warning("config_warning", problem=line)


def load_config(path: str | os.PathLike[str] = DEFAULT_CONFIG_PATH, *,
                environ: Mapping[str, str] | None = None, on_warning: Warn | None = None) -> Config:
    """Read, resolve and validate a TOML configuration file.

    Raises :class:`ConfigError` carrying every problem found (one line each, naming the key
    path). Warnings (e.g. a literal secret in a file group/others can read) go to
    ``on_warning`` as ``"<file>: <key>: ..."`` lines (default: a structlog warning).
    Every secret found is registered with :func:`syncd.redact.register_secret`.
    """
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the configuration file: {exc.strerror or exc}",
                          source=source) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=source) from None
    except RecursionError:
        raise ConfigError(f"not valid TOML: values nested deeper than Python can parse "
                          f"(at most {MAX_DEPTH} levels are allowed)", source=source) from None
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        mode = None
    return validate_config_dict(data, source, environ=environ, on_warning=on_warning,
                                base_dir=Path(path).resolve().parent, file_mode=mode)


def validate_config_dict(data: Mapping[str, Any], source: str = "config.toml", *,
                         environ: Mapping[str, str] | None = None, on_warning: Warn | None = None,
                         base_dir: Path | None = None, file_mode: int | None = None) -> Config:
    """Validate an already parsed configuration (``source`` names it in messages).

    Same rules as :func:`load_config`: ``${ENV}`` substitution, ``*_file`` secrets (paths
    relative to ``base_dir``), model validation, cross-field and connector checks.
    """
    env = os.environ if environ is None else environ
    warn = on_warning or _default_warn
    problems: list[str] = []
    warnings: list[str] = []
    literal: list[str] = []
    too_deep = too_deep_at(data)
    if too_deep is not None:
        raise ConfigError(f"{key_path(too_deep)}: nested deeper than {MAX_DEPTH} levels",
                          source=source)
    data = _substitute(dict(data), (), env, problems, literal)
    _resolve_okitoki_secrets(data, base_dir, problems)
    _resolve_okitoki_profile(data, base_dir)
    problems += format_validation_errors(_validate(Config, data), Config)
    sections = config_checks.partial_sections(data)
    problems += config_checks.cross_field_problems(sections)
    connector_problems, connector_warnings = config_checks.connector_problems(
        data, sections, lambda p: _read_secret_file(p, base_dir))
    problems += connector_problems
    warnings += connector_warnings
    warnings += config_checks.deprecation_warnings(data)
    if file_mode is not None and file_mode & (stat.S_IRGRP | stat.S_IROTH):
        for key in literal:
            warnings.append(f"{key}: a literal secret in a file readable by group/others "
                            f"(mode {stat.S_IMODE(file_mode):04o}); use ${{ENV}} or a *_file "
                            f"reference, or chmod 600 the file")
    _register_secrets(data)
    if problems:
        raise ConfigError(problems, source=source)
    for line in warnings:
        warn(f"{source}: {line}")
    return Config.model_validate(data)


def _validate(model: Any, data: Any) -> list[dict[str, Any]]:
    try:
        TypeAdapter(model).validate_python(data)
    except ValidationError as exc:
        return exc.errors()
    return []


# --- secrets ------------------------------------------------------------------------------

def _substitute(value: Any, loc: tuple[Any, ...], env: Mapping[str, str], problems: list[str],
                literal: list[str]) -> Any:
    """Replace ``${NAME}`` in every string; note literal secrets (by key path)."""
    if isinstance(value, dict):
        return {k: _substitute(v, loc + (k,), env, problems, literal) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, loc + (i,), env, problems, literal) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    last = str(loc[-1]) if loc else ""
    refs = _ENV_REF.findall(value)
    if not refs and value and is_secret_key(last):
        literal.append(key_path(loc))

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in env:
            problems.append(f"{key_path(loc)}: environment variable {name} is not set")
            return m.group(0)   # kept, so the value is not also reported as empty
        return env[name]

    return _ENV_REF.sub(sub, value)


def _read_secret_file(path: str, base_dir: Path | None) -> str:
    """The one line of a secret file (size cap, timeout, regular files only); ValueError
    with a readable reason otherwise (see :mod:`syncd.secret_file`)."""
    from .secret_file import read_secret_file

    return read_secret_file(path, base_dir)


def _resolve_okitoki_profile(data: dict[str, Any], base_dir: Path | None) -> None:
    """``okitoki.profile`` relative to the configuration file's directory."""
    section = data.get("okitoki")
    if isinstance(section, dict) and isinstance(section.get("profile"), str) and base_dir is not None:
        if not Path(section["profile"]).is_absolute():
            section["profile"] = str(base_dir / section["profile"])


def _resolve_okitoki_secrets(data: dict[str, Any], base_dir: Path | None,
                             problems: list[str]) -> None:
    section = data.get("okitoki")
    if not isinstance(section, dict):
        return
    for name, required in (("api_token", True), ("webhook_token", False)):
        file_key = f"{name}_file"
        has_value, has_file = section.get(name) is not None, section.get(file_key) is not None
        if has_value and has_file:
            problems.append(f"okitoki.{name}: set exactly one of okitoki.{name} and "
                            f"okitoki.{file_key}")
        elif required and not has_value and not has_file:
            problems.append(f"okitoki.{name}: is required (or okitoki.{file_key})")
        elif has_file and isinstance(section[file_key], str):
            try:
                section[name] = _read_secret_file(section[file_key], base_dir)
            except ValueError as exc:
                problems.append(f"okitoki.{file_key}: {exc}")


def _register_secrets(value: Any, last: str = "") -> None:
    """Register secret-named values and passwords inside URLs, everywhere in the config."""
    if isinstance(value, dict):
        for k, v in value.items():
            _register_secrets(v, str(k))
    elif isinstance(value, list):
        for v in value:
            _register_secrets(v, last)
    elif isinstance(value, str):
        if is_secret_key(last) and not last.endswith("_file"):
            register_secret(value)
        m = re.match(r"^[a-z][a-z0-9+.-]*://[^/:@]*:([^@/]+)@", value, re.IGNORECASE)
        if m:
            register_secret(m.group(1))
