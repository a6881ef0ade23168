"""The ``syncd`` console script.

Exit codes: 0 success; 1 a runtime failure (a job or an online check failed, a remote
refused); 2 wrong command-line usage; 78 (EX_CONFIG) the configuration is invalid or the
state database needs ``syncd migrate`` — systemd's ``RestartPreventExitStatus=78`` keeps the
unit from restart-looping on either. Every line printed passes through
:func:`syncd.redact.redact` (:mod:`syncd.cli_common`), so no secret reaches a terminal or a pipe.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import sys
import tempfile
import threading
from typing import Any, Callable, Iterator

from . import __version__
from .config import DEFAULT_CONFIG_PATH, Config
from .errors import EX_CONFIG, ConfigError, RemoteError
from .cli_common import build_syncer, emit, emit_rows, err, load, open_state, out
from .cli_output import explain_remote_error, jsonable

__all__ = ["main", "build_parser"]


def _configure_logs(config: Config | None, *, quiet: bool = False) -> None:
    from .logs import configure_logging

    if config is None:
        configure_logging("auto", "warning")
    else:
        level = "warning" if quiet else config.daemon.log_level
        configure_logging(config.daemon.log_format, level)


# -- commands -----------------------------------------------------------------------------

def _few_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's malloc arenas before the daemon starts its threads (as ``MALLOC_ARENA_MAX``
    would): each thread allocating outside the GIL otherwise gets an arena of its own, a few
    MB of resident memory an idle daemon keeps (DESIGN.md "Targets": under 80 MB). Python's
    own small-object allocator is unaffected; elsewhere than glibc this does nothing."""
    if "MALLOC_ARENA_MAX" in os.environ or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        ctypes.CDLL(None).mallopt(-8, arenas)   # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


def _catch_stop_signals(stop: threading.Event) -> Callable[[], None]:
    """Installed first thing in ``run``: loading the configuration, the engine and the state
    database takes a moment (seconds on a loaded machine), and systemd may stop the service
    during it; that is a clean stop (exit 0), not a death by signal."""
    from .signals import catch_stop_signals

    return catch_stop_signals(stop)


def cmd_run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    restore = _catch_stop_signals(stop)
    _few_malloc_arenas()
    try:
        config = load(args)
        _configure_logs(config)
        from .daemon import Daemon
        from .store import check_schema

        check_schema(config.daemon.state_url)
        syncer = build_syncer(config)
        daemon = Daemon(syncer, config, stop_event=stop)
        from .heap import settle

        settle()
        code = daemon.run()
    finally:
        restore()
    if daemon.unfinished_jobs:
        # A job ignored the stop event past shutdown_timeout: everything it did is in
        # committed transactions or will be redone, so leave without waiting for it.
        sys.stderr.flush()
        os._exit(code)
    return code


def cmd_once(args: argparse.Namespace) -> int:
    config = load(args)
    _configure_logs(config, quiet=args.json)
    from .store import check_schema

    check_schema(config.daemon.state_url)
    syncer = build_syncer(config, dry_run=args.dry_run)
    from .progress import CycleProgress

    try:
        with CycleProgress(syncer.store) if not args.json else contextlib.nullcontext():
            cycle = syncer.cycle(dry_run=args.dry_run)
        reports, changes = list(cycle.runs), list(cycle.changes)
    finally:
        syncer.close()
    if args.json:
        emit({"dry_run": args.dry_run, "reports": reports, "changes": changes}, True)
    else:
        _print_cycle(reports, changes, args.dry_run)
    return 0


def _print_cycle(reports: list[Any], changes: list[Any], dry_run: bool) -> None:
    for report in reports:
        data = jsonable(report)
        counts = ", ".join(f"{k}={v}" for k, v in sorted((data.get("counts") or {}).items()))
        out(f"{data.get('job')}: {counts or 'nothing to do'}")
        for error in (data.get("errors") or [])[:20]:
            out(f"  error: {error}")
    if dry_run:
        out(f"dry run: {len(changes)} change(s) would be made, nothing was written")
        for change in changes:
            c = jsonable(change)
            fields = ", ".join(f"{k}={v!r}" for k, v in (c.get("fields") or {}).items())
            why = f"  ({c['reason']})" if c.get("reason") else ""
            out(f"  {c.get('target')}: {c.get('operation')} {c.get('record_id') or '(new)'}"
                 f"{': ' + fields if fields else ''}{why}")


def cmd_check(args: argparse.Namespace) -> int:
    config = load(args)
    from .connector import Capabilities, load_connector

    caps = Capabilities.declared_by(load_connector(config.crm.connector))   # None: set per instance
    calls = config.calls.to_crm and (caps is None or caps.calls_write)
    lines = [f"{args.config}: configuration is valid",
             f"  Oki-Toki: {config.okitoki.url} (time zone {config.okitoki.timezone})",
             f"  CRM: {config.crm.connector} connector",
             f"  fields mapped: {', '.join(config.contacts.fields) or 'none'}",
             f"  dialer rules: {', '.join(r.name for r in config.dialer) or 'none'}",
             f"  calls to the CRM: {'yes' if calls else 'no'}",
             f"  do-not-call: {'list ' + str(config.do_not_call.list_id) if config.do_not_call.list_id else 'off'}"]
    if not args.online:
        for line in lines:
            out(line)
        return 0
    _configure_logs(None)
    _check_local(config, args.config)
    with _checkable(config) as checked:
        code = _check_online(checked, config, args.config)
    # Only now: an online problem (a missing table) must not follow "configuration is valid".
    for line in lines if code == 0 else ():
        out(line)
    return code


def _check_local(config: Config, source: str) -> None:
    """The state database is usable and http_listen can be bound (ConfigError if not)."""
    from .config_online import listen_problems, state_db_problems

    problems, warnings = state_db_problems(config.daemon.state_url)
    more, warned = listen_problems(config.daemon.http_listen)
    for line in warnings + warned:
        err(f"warning: {source}: {line}")
    if problems + more:
        raise ConfigError(problems + more, source=source)


@contextlib.contextmanager
def _checkable(config: Config) -> Iterator[Config]:
    """``config`` itself if its state database is migrated, else a copy on a scratch one
    (``check --online`` must work before ``syncd migrate``)."""
    from .store import check_schema, migrate

    try:
        check_schema(config.daemon.state_url)
        migrated = True
    except ConfigError:
        migrated = False
    if migrated:
        yield config
        return
    with tempfile.TemporaryDirectory(prefix="syncd-check-") as tmp:
        url = f"sqlite:///{tmp}/check.db"
        migrate(url)
        yield config.model_copy(update={"daemon": config.daemon.model_copy(update={"state_url": url})})


def _check_online(config: Config, original: Config, source: str) -> int:
    syncer = build_syncer(config)
    ok = True
    try:
        sides: tuple[tuple[str, Any], ...] = (("Oki-Toki", syncer.okitoki),
                                              (f"CRM ({original.crm.connector})", syncer.crm))
        for label, side in sides:
            try:
                side.health_check()
                out(f"{label}: OK (authenticated)")
            except RemoteError as exc:
                ok = False
                err(f"{label}: FAILED: {explain_remote_error(exc)}")
        problems = _live_capabilities(original, syncer.crm) if ok else []
    finally:
        syncer.close()
    if problems:
        raise ConfigError(problems, source=source)
    return 0 if ok else 1


def _live_capabilities(config: Config, crm: Any) -> list[str]:
    """What the connected CRM really allows (e.g. the reflected SQL schema) vs the config."""
    from .config_checks import config_capability_problems

    if crm is None:
        return []
    errors, warnings = config_capability_problems(config, crm)
    for line in warnings:
        err(f"warning: {line}")
    return errors


def cmd_status(args: argparse.Namespace) -> int:
    config = load(args)
    store = open_state(config)
    limits = {"okitoki": config.okitoki.daily_request_budget,
              "crm": config.crm.daily_request_budget}
    from . import engine
    from .health import stream_intervals

    try:
        emit(engine.status_report(store, limits=limits, intervals=stream_intervals(config)),
              args.json)
    finally:
        store.close()
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .cli_verify import main as verify

    return verify(args)


def cmd_probe(args: argparse.Namespace) -> int:
    from .cli_probe import main as probe

    return probe(args)


def cmd_migrate(args: argparse.Namespace) -> int:
    config = load(args)
    from .store import migrate

    revision = migrate(config.daemon.state_url)
    out(f"state database is at schema revision {revision}")
    return 0


def cmd_conflicts(args: argparse.Namespace) -> int:
    if args.action == "resolve":
        return cmd_ops(args)
    config = load(args)
    from . import engine

    return emit_rows(engine.list_conflicts(open_state(config)), args.json, "no conflicts")


def cmd_dead_letters(args: argparse.Namespace) -> int:
    config = load(args)
    store = open_state(config)
    from . import engine

    if args.action == "list":
        return emit_rows(engine.list_dead_letters(store), args.json, "no dead letters")
    if not args.ids and not args.all:
        err(f"syncd dead-letters {args.action}: name the ids, or pass --all")
        return 2
    ids = None if args.all else args.ids
    n = (engine.retry_dead_letters if args.action == "retry" else engine.drop_dead_letters)(store, ids)
    verb = "queued again" if args.action == "retry" else "dropped"
    out(f"{n if n is not None else 'the'} dead letters {verb}")
    return 0


def cmd_resync(args: argparse.Namespace) -> int:
    config = load(args)
    store = open_state(config)
    from . import engine

    try:
        result = engine.resync(store, args.stream or None)
    finally:
        store.close()
    out("cursors reset: the next cycles re-read both sides (nothing is written twice)")
    if result:
        emit(result, False)
    return 0


def cmd_ops(args: argparse.Namespace) -> int:
    """journal, history, trace, holds and conflicts resolve: see :mod:`syncd.cli_ops`."""
    config = load(args)
    store = open_state(config)
    try:
        from .cli_ops import run as run_ops

        return run_ops(args, config, store)
    finally:
        store.close()


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import main as demo

    return demo(args)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from .okitoki.sandbox.cli import run as sandbox

    return sandbox(args)


# -- parser -------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", default=argparse.SUPPRESS, metavar="PATH",
                        help=f"configuration file (default {DEFAULT_CONFIG_PATH})")
    parser = argparse.ArgumentParser(prog="syncd", description="Keeps an Oki-Toki call center "
                                     "and a CRM in agreement.")
    parser.add_argument("-c", "--config", default=DEFAULT_CONFIG_PATH, metavar="PATH",
                        help=f"configuration file (default {DEFAULT_CONFIG_PATH})")
    parser.add_argument("--version", action="version", version=f"syncd {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=_LazyParser)

    def add(name: str, fn: Callable[[argparse.Namespace], int], text: str) -> _LazyParser:
        # typeshed wants parents of the subparsers' class; argparse takes any parser there
        p: _LazyParser = sub.add_parser(name, parents=[common],  # type: ignore[list-item]
                                        help=text, description=text)
        p.set_defaults(func=fn)
        return p

    add("run", cmd_run, "run the daemon until SIGTERM/SIGINT")
    p = add("once", cmd_once, "run one full cycle, then exit")
    p.add_argument("--dry-run", action="store_true", help="plan without writing; print the plan")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("check", cmd_check, "validate the configuration")
    p.add_argument("--online", action="store_true",
                   help="also make one cheap authenticated call to each system")
    p = add("status", cmd_status, "cursors, lag, outbox, dead letters, conflicts, API use")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("verify", cmd_verify, "compare both sides with the state database; report drift "
            "(exit 1), --repair heals it through the outbox")
    p.add_argument("--repair", action="store_true", help="queue the repairs (the daemon's default)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add("migrate", cmd_migrate, "create or upgrade the state database schema")
    add("probe", cmd_probe, "try every Oki-Toki operation the configuration needs, "
        "within a request cap; mismatches name the profile key to change").plug("syncd.cli_probe")
    p = add("conflicts", cmd_conflicts, "list the conflict journal, or resolve a conflict")
    p.add_argument("action", nargs="?", choices=["list", "resolve"], default="list")
    p.add_argument("id", nargs="?", type=int, help="conflict id (resolve)")
    p.add_argument("--take", nargs="+", metavar="SIDE", help="resolve: crm, okitoki, or value VALUE "
                   "(a JSON literal, or text)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p = add("dead-letters", cmd_dead_letters, "list, retry or drop quarantined operations")
    p.add_argument("action", choices=["list", "retry", "drop"])
    p.add_argument("ids", nargs="*", help="dead letter ids (retry/drop)")
    p.add_argument("--all", action="store_true", help="retry/drop every dead letter")
    p.add_argument("--json", action="store_true", help="machine-readable output (list)")
    p = add("resync", cmd_resync, "re-read both sides from the beginning (links are kept)")
    p.add_argument("--stream", action="append", metavar="NAME",
                   help="only this stream (crm:contacts, okitoki:contacts, okitoki:calls); repeatable")
    add("journal", cmd_ops, "the API call journal: filter, group, export "
        "(table, csv, xlsx, html, json)").plug("syncd.reports", "journal")
    add("history", cmd_ops, "job runs (the event log): filter, group, export").plug(
        "syncd.reports", "history")
    p = add("merge-candidates", cmd_ops, "records whose number matched several contacts: list, "
            "link one to its contact, or dismiss (a person of its own)")
    p.add_argument("action", nargs="?", choices=["list", "link", "dismiss"], default="list")
    p.add_argument("id", nargs="?", type=int, help="merge candidate id (link/dismiss)")
    p.add_argument("--to", type=int, metavar="LINK", help="link: the candidate link it belongs to")
    p.add_argument("--json", action="store_true", help="machine-readable output (list)")
    p = add("holds", cmd_ops, "floods the guard held: list, release or drop them")
    p.add_argument("action", nargs="?", choices=["list", "release", "drop"], default="list")
    p.add_argument("id", nargs="?", type=int, help="hold id (release/drop)")
    p.add_argument("--json", action="store_true", help="machine-readable output (list)")
    p = add("trace", cmd_ops, "one contact's story: values on both sides, dialer rules and why, "
            "tasks, calls, conflicts, dead letters")
    p.add_argument("who", metavar="PHONE|crm:ID|okitoki:ID")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    add("demo", cmd_demo, "run the embedded demo (sandbox + SQLite CRM); needs no config").plug(
        "syncd.demo", fallback=_demo_fallback)
    add("sandbox", cmd_sandbox, "run the local Oki-Toki emulator").plug("syncd.okitoki.sandbox.cli")
    return parser


def _demo_fallback(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


class _LazyParser(argparse.ArgumentParser):
    """A command's parser whose options a module declares (``module.add_arguments``), imported
    only when that command is parsed or its help shown: ``syncd run`` does not load the demo,
    the sandbox (starlette, uvicorn), the reports or the probe, which an idle daemon would
    carry in memory for nothing."""

    _plugs: list[tuple[str, tuple[Any, ...], Callable[[argparse.ArgumentParser], None] | None]]

    def plug(self, module: str, *extra: Any,
             fallback: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
        self.__dict__.setdefault("_plugs", []).append((module, extra, fallback))

    def _plug_now(self) -> None:
        plugs = self.__dict__.pop("_plugs", [])
        for module, extra, fallback in plugs:
            if not _plug_arguments(self, module, *extra) and fallback is not None:
                fallback(self)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._plug_now()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._plug_now()
        return super().format_usage()

    def format_help(self) -> str:
        self._plug_now()
        return super().format_help()


def _plug_arguments(parser: argparse.ArgumentParser, module: str, *extra: Any) -> bool:
    """Let ``module.add_arguments(parser, *extra)`` declare a command's options; False if it cannot."""
    try:
        importlib.import_module(module).add_arguments(parser, *extra)
        return True
    except (ImportError, AttributeError, argparse.ArgumentError):
        return False


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        pass


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``syncd`` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        for line in str(exc).splitlines():
            err(line)
        n = len(exc.problems)
        err(f"syncd: {n} configuration problem{'s' if n != 1 else ''}; nothing was done")
        return EX_CONFIG
    except RemoteError as exc:
        err(f"syncd: {explain_remote_error(exc)}")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `syncd dead-letters list | head`: the reader has what it wanted. Point stdout at
        # /dev/null so the interpreter's final flush does not fail again, and end quietly.
        _silence_stdout()
        return 141   # 128 + SIGPIPE, as a program killed by the closed pipe would
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a traceback with secrets
        err(f"syncd {args.command}: {type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
