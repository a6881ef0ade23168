"""The operator's commands over the state database: ``journal``, ``history``, ``trace``,
``holds`` and ``conflicts resolve``. :func:`run` is called by :mod:`syncd.cli` with the loaded
configuration and an open store; none of these calls a remote system."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from .cli_common import emit, emit_rows, err, out
from .config import Config

__all__ = ["run"]


def run(args: argparse.Namespace, config: Config, store: Any) -> int:
    if args.command in ("journal", "history"):
        from .reports import run as report

        return report(args, args.command, store, config.okitoki.price_per_request)
    if args.command == "trace":
        return _trace(args, config, store)
    if args.command == "holds":
        return _holds(args, store)
    if args.command == "merge-candidates":
        return _candidates(args, store)
    return _resolve(args, config, store)


def _trace(args: argparse.Namespace, config: Config, store: Any) -> int:
    from .engine.trace import render_trace, trace

    try:
        report = trace(store, config, args.who)
    except ValueError as exc:
        err(f"syncd trace: {exc}")
        return 2
    if args.json:
        emit(report, True)
    else:
        out(render_trace(report))
    return 0 if report["contacts"] or report["merge_candidates"] else 1


def _holds(args: argparse.Namespace, store: Any) -> int:
    from .engine.guard import HoldNotFound, drop_hold, list_holds, release_hold

    if args.action == "list":
        return emit_rows(list_holds(store), args.json, "no holds")
    if args.id is None:
        err(f"syncd holds {args.action}: name the hold id (syncd holds list)")
        return 2
    act = release_hold if args.action == "release" else drop_hold
    try:
        n = act(store, args.id, now=datetime.now(UTC))
    except (HoldNotFound, ValueError) as exc:
        err(f"syncd holds {args.action}: {exc}")
        return 1
    verb = "released: they go out with the next push" if args.action == "release" else "dropped"
    out(f"hold {args.id}: {n} operation{'s' if n != 1 else ''} {verb}")
    return 0


def _resolve(args: argparse.Namespace, config: Config, store: Any) -> int:
    from .engine.context import Context
    from .engine.resolve import ConflictNotFound, resolve_conflict

    take = args.take or []
    if args.id is None or not take or (take[0] == "value") != (len(take) == 2) or len(take) > 2:
        err("syncd conflicts resolve: usage: resolve ID --take crm|okitoki|value VALUE")
        return 2
    try:
        done = resolve_conflict(Context(config=config, store=store, crm=None, okitoki=None),
                                args.id, take[0], take[1] if len(take) == 2 else None)
    except (ConflictNotFound, ValueError) as exc:
        err(f"syncd conflicts resolve: {exc}")
        return 1 if isinstance(exc, ConflictNotFound) else 2
    sides = " and ".join(done["writes"]) or "neither side (both hold it already)"
    out(f"conflict {done['conflict']}: {done['field']} = {done['value']!r}; written to {sides} "
         f"by the next push")
    return 0


def _candidates(args: argparse.Namespace, store: Any) -> int:
    from .engine.candidates import CandidateNotFound, dismiss_candidate, link_candidate, list_candidates

    if args.action == "list":
        return emit_rows(list_candidates(store), args.json, "no merge candidates")
    if args.id is None or (args.action == "link" and args.to is None):
        err(f"syncd merge-candidates {args.action}: usage: link ID --to LINK | dismiss ID")
        return 2
    try:
        if args.action == "link":
            done = link_candidate(store, args.id, args.to, now=datetime.now(UTC))
            out(f"{done['record']} joined link {done['link']}; the next push merges the pair")
        else:
            done = dismiss_candidate(store, args.id, now=datetime.now(UTC))
            out(f"{done['record']} is a contact of its own now (link {done['link']}); the next push "
                 f"syncs it")
    except (CandidateNotFound, ValueError) as exc:
        err(f"syncd merge-candidates {args.action}: {exc}")
        return 1
    return 0
