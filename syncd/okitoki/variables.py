"""How variables travel: the ordinary form (query string or form body) and ``json_request``."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["plain", "json_ids"]


def plain(value: Any) -> Any:
    """One variable in the ordinary (non-json_request) form."""
    if isinstance(value, bool):
        return 1 if value else 0
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        if any(isinstance(v, (dict, list)) for v in value):
            return json.dumps(list(value), ensure_ascii=False)
        return ",".join(str(v) for v in value)
    return value


_ID_VARIABLES = ("dialer_id", "contact_id", "list_id", "task_id", "session_id", "user_id")


def json_ids(variables: dict[str, Any]) -> dict[str, Any]:
    """Ids are strings inside syncd; Oki-Toki's are integers, so JSON carries them as numbers."""
    out = dict(variables)
    for key in _ID_VARIABLES:
        value = out.get(key)
        if isinstance(value, str) and value.isdigit():
            out[key] = int(value)
    return out
