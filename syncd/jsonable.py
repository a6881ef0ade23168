"""JSON-safe copies of values: what the CLI prints and what the state database stores as JSON
(dead letters, outbox payloads).

One conversion for both, so a record looks the same in ``syncd outbox`` as in the database.
"""

from __future__ import annotations

import dataclasses
import enum
import math
from datetime import date, datetime, timedelta
from typing import Any

__all__ = ["jsonable"]


def jsonable(value: Any) -> Any:
    """A plain JSON value (dict, list, str, int, float, bool, None) for ``value``.

    Dataclasses, pydantic models and objects with public attributes become dicts, sets become
    sorted lists, tuples lists, enums their value, datetimes and dates ISO text, timedeltas
    seconds; dict keys become text. NaN and infinity become their repr and NUL characters
    ``\\0`` (PostgreSQL refuses both in JSON). Anything else becomes its text.
    """
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    if isinstance(value, str):
        return value.replace("\x00", "\\0")
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "model_dump"):
        return jsonable(value.model_dump())
    if isinstance(value, dict):
        return {jsonable(k if isinstance(k, str) else str(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, (set, frozenset)) else items
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if hasattr(value, "__dict__"):
        return {k: jsonable(v) for k, v in vars(value).items() if not k.startswith("_")}
    return jsonable(str(value))
