"""How a benchmark prints its figures: one JSON object (``--json``), or one aligned line per
figure for a person at a terminal."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["print_figures"]


def print_figures(result: dict[str, Any], *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result))
        return
    width = max((len(key) for key in result), default=0) + 2
    for key, value in result.items():
        print(f"{key:{width}} {value}")
