"""Use of the Oki-Toki rate limit at a given network latency (issue 9, part 1). Not a test.

    .venv/bin/python bench/bench_inflight.py [--contacts 3000] [--rpm 1200] [--latency 300]
                                             [--in-flight 8] [--kill-at 20] [--json]

An initial push: ``--contacts`` demo contacts in a SQLite CRM, ``syncd run`` as a child
process, the sandbox in its own process with a rate limit of ``--rpm`` (429 beyond it) and
its latency fault adding ``--latency`` ms to every request. Printed:

- the sustained rate: Oki-Toki requests (the daemon's own API journal) between the first and
  the last contact create, as a share of ``--rpm`` (1.00 = the whole limit);
- the 429s the sandbox answered (the daemon must cause none);
- the duplicate check: every contact linked once, no Oki-Toki contact created twice, and the
  convergence check of the system tests (``syncd.testing.convergence``).

``--kill-at S``: ``kill -9`` the daemon S seconds after it started, start it again and let it
finish; the duplicate check then covers the creates that were in flight at the kill.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from figures import print_figures  # noqa: E402
from syncd.demo import BLACKLIST, DIALER_CALLBACK, DIALER_NEW, demo_config  # noqa: E402
from syncd.demo_data import demo_contacts  # noqa: E402
from syncd.testing.convergence import check_convergence  # noqa: E402
from syncd.testing.sandbox import SandboxHandle, sandbox_process, terminate  # noqa: E402
from syncd.testing.scenario import SqlCrm, to_toml  # noqa: E402

TOKEN = "bench-token-0123456789"
DIALERS = {DIALER_NEW: ["new"], DIALER_CALLBACK: ["callback"]}


def _syncd(*args: str, config: Path, log: Path | None = None) -> subprocess.Popen[str]:
    out = open(log, "a", encoding="utf-8") if log else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "syncd.cli", *args, "-c", str(config)],
                            stdout=out, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def _outbox_left(state_url: str) -> int:
    engine = create_engine(state_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(
                "SELECT count(*) FROM outbox WHERE status IN ('pending', 'claimed')")).scalar() or 0)
    finally:
        engine.dispose()


def _journal(state_url: str) -> list[tuple[datetime, str]]:
    engine = create_engine(state_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT at, operation FROM api_call WHERE system = 'okitoki' "
                                     "ORDER BY at")).all()
    finally:
        engine.dispose()
    return [(r[0] if isinstance(r[0], datetime) else datetime.fromisoformat(str(r[0])), r[1])
            for r in rows]


def sustained_ratio(calls: list[tuple[datetime, str]], rpm: int) -> tuple[float, int, float]:
    """(share of the limit, requests, seconds) between the first and last contact create."""
    creates = [at for at, op in calls if op == "upsert_contact"]
    if len(creates) < 2:
        return 0.0, len(creates), 0.0
    first, last = creates[0], creates[-1]
    inside = sum(1 for at, _ in calls if first <= at <= last)
    seconds = (last - first).total_seconds()
    return round((inside - 1) / seconds / (rpm / 60), 3), inside, round(seconds, 1)


def _wait_drained(state_url: str, proc: subprocess.Popen[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    time.sleep(3.0)
    while time.monotonic() < deadline and proc.poll() is None:
        if _outbox_left(state_url) == 0:
            time.sleep(2.0)                      # one more cycle: nothing new queued
            if _outbox_left(state_url) == 0:
                return
        time.sleep(1.0)
    raise SystemExit(f"the outbox did not drain within {timeout:.0f} s (see the daemon log)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="syncd-inflight-") as tmp_name, \
            sandbox_process(token=TOKEN, seed="demo", settle_delay="0s") as sb:
        tmp = Path(tmp_name)
        crm = SqlCrm(f"sqlite:///{tmp / 'crm.db'}").create()
        people = demo_contacts(args.contacts, seed=3)
        crm.insert(people)
        cfg = demo_config(tmp, sb.url, TOKEN)
        cfg["okitoki"].update(requests_per_minute=args.rpm, daily_request_budget=10_000_000,
                              max_in_flight=args.in_flight)
        cfg["daemon"]["log_level"] = "warning"
        path = tmp / "config.toml"
        path.write_text(to_toml(cfg), encoding="utf-8")
        path.chmod(0o600)
        if _syncd("migrate", config=path).wait(120) != 0:
            raise SystemExit("syncd migrate failed")
        state_url = cfg["daemon"]["state_url"]
        sb.set_rate_limit(args.rpm)
        if args.latency:
            sb.set_faults([{"kind": "latency", "seconds": args.latency / 1000, "rate": 1.0}])
        sb.clear_requests()
        log = tmp / "syncd.log"
        started = time.monotonic()
        proc = _syncd("run", config=path, log=log)
        killed = False
        try:
            if args.kill_at:
                time.sleep(args.kill_at)
                proc.send_signal(signal.SIGKILL)
                proc.wait(10)
                killed = True
                proc = _syncd("run", config=path, log=log)
            _wait_drained(state_url, proc, args.timeout)
            took = time.monotonic() - started
            verdict = _converged(state_url, crm, sb, 60)
        finally:
            terminate(proc)
        ratio, requests, seconds = sustained_ratio(_journal(state_url), args.rpm)
        journal = sb.requests(limit=0)
        phones = [p for c in sb.state()["contacts"] if not c.get("deleted") for p in c["phones"]]
        return {"contacts": args.contacts, "rpm": args.rpm, "latency_ms": args.latency,
                "max_in_flight": args.in_flight, "killed_at_s": args.kill_at if killed else None,
                "sustained_ratio": ratio, "requests_in_window": requests,
                "window_s": seconds, "wall_s": round(took, 1),
                "okitoki_requests": journal["total"],
                "http_429": int(journal["by_status"].get("429", 0)),
                "early_retries": journal["early_retries"],
                "duplicate_okitoki_contacts": len(phones) - len(set(phones)),
                "converged": verdict.ok, "problems": verdict.problems[:5]}


def _converged(state_url: str, crm: SqlCrm, sb: SandboxHandle, timeout: float) -> Any:
    deadline, verdict = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        verdict = check_convergence(state_url, crm, sb.state(), dialers=DIALERS, blacklist_id=BLACKLIST)
        if verdict.ok:
            break
        time.sleep(1.0)
    return verdict


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--contacts", type=int, default=3000)
    p.add_argument("--rpm", type=int, default=1200, help="[okitoki] requests_per_minute and the sandbox's limit")
    p.add_argument("--latency", type=int, default=300, help="ms the sandbox adds to every request")
    p.add_argument("--in-flight", type=int, default=8, help="[okitoki] max_in_flight")
    p.add_argument("--kill-at", type=float, default=None, help="kill -9 the daemon this many s after start")
    p.add_argument("--timeout", type=float, default=1800)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    print_figures(run(args), as_json=args.json)


if __name__ == "__main__":
    main()
