"""An idle daemon: its memory and its Oki-Toki requests when nothing changes (issue 9 part 3,
DESIGN.md "Targets": an idle daemon stays under 80 MB and sends no requests beyond its polls).

    .venv/bin/python bench/bench_idle.py [--linked 10000] [--poll 10] [--warmup 30]
                                         [--window 60] [--json]

A world of ``--linked`` contacts linked on both sides (``bench/seed.py``: CRM, state database
and sandbox seeded in bulk, as after an initial sync), the sandbox serving it in its own
process (``bench/seeded_sandbox.py``), and ``syncd run`` as a child process with the demo
configuration at a poll interval of ``--poll`` seconds (CRM and Oki-Toki; push every poll too,
housekeeping and verify at their defaults). After ``--warmup`` seconds (start-up, the first
polls, the first housekeeping), the Oki-Toki requests of the next ``--window`` seconds are
counted by the sandbox, by operation, against the polls: each Oki-Toki poll reads one
``contacts/export`` page and one ``calls/log`` page, so ``extra`` = requests - 2 x polls
(polls = the ``pull:okitoki:*`` runs the daemon recorded in its ``run`` table during the
window). Memory: ``VmRSS`` and ``VmHWM`` of the daemon from ``/proc/PID/status`` at the end.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import seed  # noqa: E402
from figures import print_figures  # noqa: E402
from bench_sync import TOKEN, config_for, seeded_sandbox  # noqa: E402

from syncd.testing.sandbox import terminate  # noqa: E402
from syncd.testing.scenario import to_toml  # noqa: E402


_MODULES = """
import runpy, sys, threading, time
def dump():
    time.sleep({after})
    with open({out!r}, "w") as f:
        f.write("\\n".join(sorted(sys.modules)) + "\\n")
threading.Thread(target=dump, daemon=True).start()
sys.argv[0] = "syncd"
runpy.run_module("syncd.cli", run_name="__main__", alter_sys=True)
"""


def proc_status(pid: int) -> dict[str, float]:
    """VmRSS / VmHWM / RssAnon of ``pid`` in MB."""
    out: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key = line.split(":", 1)[0]
        if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
            out[key] = round(int(line.split()[1]) / 1024, 1)
    return out


def poll_runs(state_db: Path, since: datetime, until: datetime) -> dict[str, int]:
    import sqlite3

    con = sqlite3.connect(state_db)
    try:
        rows = con.execute("SELECT job, started_at FROM run").fetchall()
    finally:
        con.close()
    counts: dict[str, int] = {}
    for job, started in rows:
        at = datetime.fromisoformat(str(started))
        at = at if at.tzinfo else at.replace(tzinfo=UTC)
        if since <= at < until:
            counts[job] = counts.get(job, 0) + 1
    return counts


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="syncd-idle-") as tmp_name:
        folder = Path(tmp_name)
        paths = seed.seed_linked(folder, args.linked, datetime.now(UTC), TOKEN)
        with seeded_sandbox(paths["sandbox"]) as sb:
            cfg = config_for(folder, sb.url)
            interval = f"{args.poll}s"
            cfg["daemon"].update(push_interval=interval, jitter="0s")
            cfg["daemon"].pop("housekeeping_interval", None)      # the default (10 min)
            cfg["okitoki"]["poll_interval"] = interval
            cfg["crm"]["poll_interval"] = interval
            path = folder / "config.toml"
            path.write_text(to_toml(cfg), encoding="utf-8")
            path.chmod(0o600)
            log = open(folder / "syncd.log", "w", encoding="utf-8")
            command = ["-m", "syncd.cli", "run", "-c", str(path)]
            if args.modules:   # diagnosis: the modules the daemon has loaded, written at the end
                command = ["-c", _MODULES.format(out=str(Path(args.modules).resolve()),
                                                 after=args.warmup + args.window - 2), "run", "-c", str(path)]
            proc = subprocess.Popen([sys.executable, *command],
                                    stdout=log, stderr=subprocess.STDOUT,
                                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
            try:
                time.sleep(args.warmup)
                if proc.poll() is not None:
                    raise SystemExit(f"syncd run exited ({proc.returncode}); see {folder / 'syncd.log'}")
                before = sb.requests(limit=0)["by_operation"]
                since = datetime.now(UTC)
                time.sleep(args.window)
                until = datetime.now(UTC)
                after = sb.requests(limit=0)["by_operation"]
                memory = proc_status(proc.pid)
            finally:
                terminate(proc)
                log.close()
        requests = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
        runs = poll_runs(paths["state"], since, until)
    polls = runs.get("pull:okitoki:contacts", 0)
    call_polls = runs.get("pull:okitoki:calls", 0)
    total = sum(requests.values())
    return {"linked": args.linked, "poll_s": args.poll, "window_s": args.window,
            "memory_mb": memory, "requests": requests, "requests_total": total,
            "okitoki_poll_runs": {"contacts": polls, "calls": call_polls}, "jobs": runs,
            "extra_requests": total - polls - call_polls}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--linked", type=int, default=10_000)
    p.add_argument("--poll", type=int, default=10, help="poll (and push) interval, seconds")
    p.add_argument("--warmup", type=float, default=30.0)
    p.add_argument("--window", type=float, default=60.0)
    p.add_argument("--json", action="store_true")
    p.add_argument("--modules", metavar="FILE", help="diagnosis: write the daemon's loaded modules to FILE")
    args = p.parse_args()
    print_figures(run(args), as_json=args.json)


if __name__ == "__main__":
    main()
