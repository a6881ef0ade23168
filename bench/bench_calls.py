"""What the call-log walk costs: Oki-Toki requests per hour at a given call volume, and that
no call is lost (issue 14). Not part of the test suite.

    .venv/bin/python bench/bench_calls.py [--calls-per-day 10000] [--day-hours 24]
                                          [--hours 1] [--poll 30] [--json]

The sandbox runs in a thread; calls are simulated in-process at the daily rate (spread over
``--day-hours`` of the day: 24 = even, 10 = a working day), with durations from 30 s to 3 h
(see DURATIONS). Five hours of history come first, then the walk polls every ``--poll``
seconds of simulated time (the daemon's clock and the sandbox's move together) while new
calls end. Counted: ``calls/log`` requests per hour (the sandbox's journal), calls recorded
vs calls that ended, and the longest call.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from sqlalchemy import func, select  # noqa: E402

from syncd.config import validate_config_dict  # noqa: E402
from syncd.engine.build import build_syncer  # noqa: E402
from syncd.okitoki.sandbox.calls import simulate_call  # noqa: E402
from syncd.store import migrate  # noqa: E402
from syncd.store.tables import CallRow  # noqa: E402
from syncd.testing.sandbox import running_sandbox  # noqa: E402
from syncd.testing.scenario import SqlCrm  # noqa: E402

# (share of calls, shortest, longest) in seconds: most are short, support lines hold long ones.
DURATIONS = [(0.80, 30, 300), (0.15, 300, 1800), (0.04, 1800, 3600), (0.01, 3600, 3 * 3600)]


def _duration(rng: random.Random) -> int:
    pick, acc = rng.random(), 0.0
    for share, low, high in DURATIONS:
        acc += share
        if pick <= acc:
            return rng.randint(low, high)
    return DURATIONS[-1][2]


def run(calls_per_day: int, day_hours: float, hours: float, poll: int) -> dict:
    rng = random.Random(14)
    per_second = calls_per_day / (day_hours * 3600)
    with running_sandbox() as sb, tempfile.TemporaryDirectory() as tmp:
        state = sb.sandbox.state
        config = validate_config_dict({
            "daemon": {"state_url": f"sqlite:///{tmp}/state.db"},
            "okitoki": {"url": sb.url, "api_token": sb.token, "requests_per_minute": 100000,
                        "daily_request_budget": 10**7},
            "crm": {"connector": "sql", "options": {"url": f"sqlite:///{tmp}/crm.db",
                                                    "create_calls_table": True}},
            "contacts": {"fields": {"name": {"crm": "name", "okitoki": "name"}}},
            "calls": {"to_crm": False, "settle_delay": "60s"},
        }, source="bench", on_warning=lambda _: None)
        migrate(config.daemon.state_url)
        SqlCrm(f"sqlite:///{tmp}/crm.db").create().dispose()
        offset = [0.0]

        def clock() -> datetime:
            return datetime.now(UTC) + timedelta(seconds=offset[0])

        def end_calls(since: float, until: float) -> int:
            """Calls that hang up in (since, until] (sandbox seconds), started earlier."""
            n = 0
            t = since
            while True:
                t += rng.expovariate(per_second)
                if t > until:
                    return n
                talk = _duration(rng)
                simulate_call(state, {"phone": f"38067{rng.randint(1_000_000, 9_999_999)}",
                                      "direction": "in", "duration": talk, "wait": 5,
                                      "started_at": int(t) - talk - 5})
                n += 1

        syncer = build_syncer(config, state_dir=Path(tmp) / "crm-state", instance_id="bench", clock=clock)
        try:
            now = state.now()
            ended = end_calls(now - 5 * 3600, now)          # history: visible before we start
            syncer.pull_okitoki_calls()
            sb.clear_requests()
            polls = int(hours * 3600 // poll)
            for _ in range(polls):
                before = state.now()
                offset[0] += poll
                state.clock_offset += poll
                ended += end_calls(before, state.now())
                syncer.pull_okitoki_calls()
            requests = sb.requests(limit=1)["by_operation"].get("calls/log", 0)
            # let the last calls settle, then see whether every call that ended was recorded
            for _ in range(int(600 // poll) + 1):
                offset[0] += poll
                state.clock_offset += poll
                syncer.pull_okitoki_calls()
            with syncer.store.begin() as conn:
                recorded = conn.execute(select(func.count()).select_from(CallRow.__table__)).scalar()
        finally:
            syncer.close()
    return {"calls_per_day": calls_per_day, "day_hours": day_hours, "poll_s": poll,
            "hours": hours, "polls": polls, "call_log_requests": requests,
            "requests_per_hour": round(requests / hours, 1), "calls_ended": ended,
            "calls_recorded": recorded, "lost": ended - recorded}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls-per-day", type=int, default=10000)
    ap.add_argument("--day-hours", type=float, default=24)
    ap.add_argument("--hours", type=float, default=1)
    ap.add_argument("--poll", type=int, default=30)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    out = run(a.calls_per_day, a.day_hours, a.hours, a.poll)
    print(json.dumps(out) if a.json else "\n".join(f"{k}: {v}" for k, v in out.items()))


if __name__ == "__main__":
    main()
