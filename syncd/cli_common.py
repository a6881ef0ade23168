"""What every ``syncd`` command module shares: printing (every line redacted), loading the
configuration, building the engine and opening the state database.

``syncd.cli`` and the command modules it loads when their command runs (``cli_ops``,
``cli_verify``, ``cli_probe``) import this module; it imports none of them, so the command
modules never import ``syncd.cli`` back.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from .cli_output import jsonable, render
from .config import Config, load_config
from .redact import redact

if TYPE_CHECKING:
    from .engine import Syncer
    from .store import Store

__all__ = ["out", "err", "emit", "emit_rows", "load", "build_syncer", "open_state"]


def out(text: str = "") -> None:
    print(redact(text), flush=True)


def err(text: str) -> None:
    print(redact(text), file=sys.stderr, flush=True)


def emit(data: Any, as_json: bool) -> None:
    if as_json:
        out(json.dumps(jsonable(data), indent=2, ensure_ascii=False))
    else:
        out(render(jsonable(data)))


def emit_rows(rows: list[Any], as_json: bool, none: str) -> int:
    """A listing command's output: the rows, or ``none`` in words when there are none (JSON
    output always shows the list, empty or not). Returns the exit code, 0."""
    if not rows and not as_json:
        out(none)
    else:
        emit(rows, as_json)
    return 0


def load(args: argparse.Namespace) -> Config:
    return load_config(args.config, on_warning=lambda line: err(f"warning: {line}"))


def build_syncer(config: Config, *, dry_run: bool = False) -> Syncer:
    """The engine's syncer for ``config`` (a dry run writes nothing, see ``Syncer.cycle``).

    The engine's facade :mod:`syncd.engine` is imported where a command needs it (the others
    start faster) and its functions are looked up on it at call time (tests replace them)."""
    from . import engine

    return engine.build_syncer(config, dry_run=dry_run)


def open_state(config: Config) -> Store:
    from .store import open_store

    return open_store(config.daemon.state_url)
