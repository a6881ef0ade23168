"""``syncd demo``: the whole daemon on embedded defaults, in about half a minute.

A temporary SQLite "CRM" with ~200 realistic contacts, the Oki-Toki sandbox on loopback with
two dialers and a blacklist, and the real daemon (scheduler, engine, outbox) with short
intervals. While it runs, a scenario thread plays the world: agents call the leads in the
sandbox, a CRM user edits contacts, one customer asks not to be called again, and one name
is edited on both sides at once. Then the scenario goes quiet, the daemon converges, and
:mod:`syncd.demo_checks` verifies the invariants on both sides. Exit 0 only if they hold.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from .demo_data import demo_contacts
from .demo_scenario import DemoWorld, play
from .testing.convergence import Verdict, check_convergence
from .testing.scenario import SqlCrm

__all__ = ["main", "add_arguments", "demo_config", "run_demo"]

DIALER_NEW, DIALER_CALLBACK, BLACKLIST = 101, 102, 7
STATUS_ORDER = ["new", "callback", "contacted", "qualified", "won", "lost"]


def demo_config(tmp: Path, okitoki_url: str, token: str, *, interval: str = "1s") -> dict[str, Any]:
    """The configuration the demo (and the system tests) run with, as a TOML-shaped dict."""
    return {
        "daemon": {"state_url": f"sqlite:///{tmp / 'state.db'}", "log_format": "json",
                   "log_level": "info", "shutdown_timeout": "10s", "push_interval": interval,
                   "housekeeping_interval": "10s", "jitter": "0s"},
        "okitoki": {"url": okitoki_url, "api_token": token, "timezone": "Europe/Kyiv",
                    "requests_per_minute": 6000, "daily_request_budget": 200000,
                    "poll_interval": interval, "timeout": "10s"},
        "crm": {"connector": "sql", "poll_interval": interval,
                "options": {"url": f"sqlite:///{tmp / 'crm.db'}", "phone_columns": ["phone", "phone2"],
                            "calls_table": "calls", "create_calls_table": True}},
        "contacts": {"default_region": "UA", "create_in_okitoki": True, "create_in_crm": False,
                     "fields": {
                         "name": {"crm": "name", "okitoki": "name", "sync": "both", "conflict": "newest"},
                         "email": {"crm": "email", "okitoki": "email", "sync": "both", "conflict": "newest"},
                         "status": {"crm": "status", "okitoki": "details.status", "sync": "to_okitoki",
                                    "conflict": "forward"},
                     }},
        "dialer": [
            {"name": "new-leads", "dialer_id": DIALER_NEW, "when": {"status": ["new"]},
             "priority": 1, "ttl": "3d", "region_from_phone": True},
            {"name": "callbacks", "dialer_id": DIALER_CALLBACK, "when": {"status": ["callback"]},
             "priority": 2, "ttl": "1d"},
        ],
        "calls": {"to_crm": True, "settle_delay": "0s", "unknown_numbers": "skip",
                  "status_field": "status", "status_order": STATUS_ORDER,
                  "outcome_status": {"answered": "contacted", "no_answer": "callback",
                                     "busy": "callback"}},
        "do_not_call": {"crm_field": "do_not_call", "list_id": BLACKLIST},
    }


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument("--contacts", type=int, default=200, help="CRM contacts to create (200)")
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="how long the scenario keeps changing things (20)")
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temp dir)")


def main(args: argparse.Namespace | list[str] | None = None) -> int:
    """``syncd demo``; ``args`` is a parsed namespace (from the CLI) or an argv list."""
    if not isinstance(args, argparse.Namespace):
        parser = argparse.ArgumentParser(prog="syncd demo", description=__doc__.splitlines()[0])
        add_arguments(parser)
        args = parser.parse_args(args)
    opts = argparse.Namespace(json=getattr(args, "json", False),
                              contacts=getattr(args, "contacts", 200),
                              seconds=getattr(args, "seconds", 20.0),
                              keep=getattr(args, "keep", None))
    if opts.keep:
        tmp = Path(opts.keep)
        tmp.mkdir(parents=True, exist_ok=True)
        return run_demo(tmp, opts)
    with tempfile.TemporaryDirectory(prefix="syncd-demo-") as d:
        return run_demo(Path(d), opts)


def run_demo(tmp: Path, opts: argparse.Namespace) -> int:
    """Run the demo in ``tmp``; print the summary; 0 only if both sides converged."""
    from .config import validate_config_dict
    from .daemon import Daemon
    from .engine import build_syncer
    from .logs import configure_logging
    from .notify import Notifier
    from .store import migrate
    from .testing.sandbox import running_sandbox

    tty = sys.stdout.isatty() and not opts.json
    say = (lambda text: print(text, flush=True)) if not opts.json else (lambda text: None)
    crm = SqlCrm(f"sqlite:///{tmp / 'crm.db'}").create()
    crm.insert(demo_contacts(opts.contacts))
    token = "demo-" + secrets.token_hex(12)
    log_file = open(tmp / "syncd.log", "w", encoding="utf-8")
    configure_logging("json", "info", stream=log_file)
    say(f"syncd demo: {opts.contacts} CRM contacts in {tmp / 'crm.db'}; logs in {tmp / 'syncd.log'}")
    try:
        with running_sandbox(token=token, seed="demo", settle_delay="0s") as sb:
            say(f"Oki-Toki sandbox on {sb.url} (dialers {DIALER_NEW}, {DIALER_CALLBACK}; blacklist {BLACKLIST})")
            config = validate_config_dict(demo_config(tmp, sb.url, token), source="demo")
            migrate(config.daemon.state_url)
            daemon = Daemon(build_syncer(config, state_dir=tmp / "crm-state"), config,
                            notifier=Notifier(""), web=False, tick=0.5)
            world = DemoWorld(state_url=config.daemon.state_url)
            verdicts: list[Verdict] = []
            conductor = threading.Thread(
                target=_conduct, args=(sb, crm, world, daemon, opts, verdicts, tty), daemon=True)
            conductor.start()
            code = daemon.run()
            conductor.join(5)
            verdict = _verdict(config.daemon.state_url, crm, sb.state())
            verdict.stats["okitoki_requests"] = int(sb.requests(limit=1)["total"])
            verdict.stats["statuses_updated"] = _statuses_updated(config.daemon.state_url)
    finally:
        log_file.close()
    problems = list(verdict.problems) + world.errors + ([f"daemon exited with {code}"] if code else [])
    summary = {"converged": not problems, **{k: verdict.stats.get(k, 0) for k in (
        "contacts_linked", "tasks_created", "tasks_removed", "calls_logged", "statuses_updated",
        "dnc_listed", "conflicts", "dead_letters", "okitoki_requests")}}
    if opts.json:
        print(json.dumps(summary))
    else:
        _print_summary(summary, world, problems)
    return 0 if not problems else 1


def _verdict(state_url: str, crm: SqlCrm, state: dict[str, Any]) -> Verdict:
    return check_convergence(state_url, crm, state,
                             dialers={DIALER_NEW: ["new"], DIALER_CALLBACK: ["callback"]},
                             blacklist_id=BLACKLIST)


def _statuses_updated(state_url: str) -> int:
    """Sum of the status updates the runs recorded (``counts`` keys naming statuses)."""
    import sqlalchemy as sa

    from .store import Run, open_store

    store = open_store(state_url)
    try:
        with store.engine.connect() as conn:
            rows = conn.execute(sa.select(Run.__table__.c.counts)).all()
    finally:
        store.engine.dispose()
    return sum(int(v) for (counts,) in rows for k, v in (counts or {}).items()
               if "status" in k and isinstance(v, int))


def _conduct(sb: Any, crm: SqlCrm, world: DemoWorld, daemon: Any, opts: argparse.Namespace,
             verdicts: list[Verdict], tty: bool) -> None:
    """Play the scenario, then wait until two checks in a row find nothing; stop the daemon."""
    started = time.monotonic()
    progress = threading.Thread(target=_progress, args=(sb, world, daemon, started, tty, opts),
                                daemon=True)
    progress.start()
    try:
        play(sb, crm, world, daemon.stop_event, opts.seconds)
        deadline = time.monotonic() + max(45.0, opts.contacts / 10)
        clean = 0
        while time.monotonic() < deadline and not daemon.stop_event.is_set():
            verdict = _verdict(world.state_url, crm, sb.state())
            verdicts.append(verdict)
            clean = clean + 1 if verdict.ok else 0
            if clean >= 2:
                break
            time.sleep(1.5)
    except Exception as exc:  # noqa: BLE001
        world.errors.append(f"conductor: {type(exc).__name__}: {exc}")
    finally:
        daemon.stop()


def _progress(sb: Any, world: DemoWorld, daemon: Any, started: float, tty: bool,
              opts: argparse.Namespace) -> None:
    """A live status line on a terminal; a line every 5 s otherwise (nothing with --json)."""
    if opts.json:
        return
    last = 0.0
    while not daemon.stop_event.wait(0.5):
        elapsed = time.monotonic() - started
        if not tty and elapsed - last < 5:
            continue
        last = elapsed
        try:
            state = sb.state()
            linked = sum(1 for c in state["contacts"] if c.get("details", {}).get("status"))
            tasks = sum(1 for t in state["tasks"] if t["status"] == "pending")
            reqs = sb.requests(limit=1)["total"]
        except Exception:  # noqa: BLE001 - progress is cosmetic
            continue
        line = (f"[{elapsed:5.1f}s] Oki-Toki contacts {linked:4d} | open tasks {tasks:4d} | "
                f"calls made {world.calls_made:3d} | CRM edits {world.crm_edits:2d} | "
                f"API requests {reqs:5d} | {daemon.progress.summary(daemon.clock())[:60]}")
        print(("\r" + line) if tty else line, end="" if tty else "\n", flush=True)
    if tty:
        print()


def _print_summary(summary: dict[str, Any], world: DemoWorld, problems: list[str]) -> None:
    print()
    print("converged" if summary["converged"] else "NOT converged")
    for key, value in summary.items():
        if key != "converged":
            print(f"  {key.replace('_', ' '):<18} {value}")
    print(f"  {'calls made':<18} {world.calls_made}   (scenario: dialer and inbound calls)")
    if world.dnc_contact:
        print(f"  CRM contact {world.dnc_contact} asked not to be called: blacklisted, tasks removed")
    if world.both_sides_contact:
        print(f"  CRM contact {world.both_sides_contact}: name edited on both sides; the newer edit won")
    for line in problems[:20]:
        print(f"  problem: {line}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
