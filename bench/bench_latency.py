"""How fast a call center feels: ``syncd run`` (a subprocess) between the Oki-Toki sandbox (a
subprocess) and a CRM, measured from outside.

* ``lead``: a new lead in a SQLite CRM (the SQL connector: polled) → its dialer task in the
  sandbox, at a given CRM poll interval (target: p95 <= poll + 2 s).
* ``webhook``: a new lead in the fake Bitrix24 (tests/fakes), which sends ONCRMCONTACTADD to
  ``/events/crm`` as Bitrix24 does → its dialer task; CRM poll 60 s (target: p95 <= 3 s).
* ``call``: a call to a linked contact whose log entry becomes readable ``--visible-after``
  seconds after hangup; the sandbox sends ``call_finished`` at hangup to ``/events/okitoki``;
  from the moment the call is readable → its row in the CRM's calls table; Oki-Toki poll 60 s
  (target: p95 <= 3 s). ``--visible-after 0.5-12`` draws each call's delay at random.

Every lead or call is made one at a time, a random 1-3 s apart (leads in the ``lead``
scenario 1 s to 3 s + a poll apart, so they fall at any phase of the poll), so each is a fresh
change and not a batch. Run from the repository root::

    .venv/bin/python bench/bench_latency.py --scenario lead --poll 5 --n 20
    .venv/bin/python bench/bench_latency.py --scenario webhook --n 20
    .venv/bin/python bench/bench_latency.py --scenario call --n 20
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from syncd.demo import DIALER_NEW, demo_config  # noqa: E402
from syncd.testing.sandbox import sandbox_process  # noqa: E402
from syncd.testing.scenario import SqlCrm, to_toml  # noqa: E402

HOOK_TOKEN = "bench-hook-token-0123456789"
APP_TOKEN = "bench-application-token-0123"


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate: Callable[[], Any], timeout: float, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    return None


def _quantiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    pick = lambda q: ordered[max(0, min(len(ordered) - 1, -(-int(q * 100) * len(ordered) // 100) - 1))]  # noqa: E731
    return {"n": len(ordered), "p50_s": round(pick(0.5), 2), "p95_s": round(pick(0.95), 2),
            "max_s": round(ordered[-1], 2)} if ordered else {"n": 0}


def _start(tmp: Path, config: dict[str, Any]) -> subprocess.Popen[str]:
    path = tmp / "config.toml"
    path.write_text(to_toml(config), encoding="utf-8")
    path.chmod(0o600)
    cli = [sys.executable, "-m", "syncd.cli"]
    subprocess.run([*cli, "migrate", "-c", str(path)], check=True, capture_output=True)
    log = open(tmp / "syncd.log", "a", encoding="utf-8")
    return subprocess.Popen([*cli, "run", "-c", str(path)], stdout=log, stderr=subprocess.STDOUT, text=True)


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


def _has_task(sb: Any, phone: str) -> bool:
    return any(t["dialer_id"] == DIALER_NEW and any(phone in p for p in t["phones"])
               for t in sb.state()["tasks"])


def _ready(sb: Any) -> None:
    """Wait for the start-up cycle (the demo seed's tasks) to settle."""
    _wait(lambda: sb.state()["tasks"], 30)
    time.sleep(2.0)


def bench_lead(tmp: Path, sb: Any, n: int, poll: float) -> dict[str, Any]:
    crm = SqlCrm(f"sqlite:///{tmp / 'crm.db'}").create()
    config = demo_config(tmp, sb.url, sb.token, interval=f"{poll:g}s")
    config["daemon"]["push_interval"] = "30s"       # only wake-ups make it run sooner
    config["okitoki"]["poll_interval"] = "30s"
    proc = _start(tmp, config)
    out: list[float] = []
    try:
        _ready(sb)
        for i in range(n):
            time.sleep(random.uniform(1.0, 3.0 + poll))   # any phase of the poll
            phone = f"+38067{5550000 + i:07d}"
            t0 = time.monotonic()
            with crm.engine.begin() as conn:
                conn.execute(crm.contacts.insert(), [dict(name=f"Lead {i}", phone=phone, status="new",
                                                          do_not_call=False,
                                                          updated_at=_utc_naive())])
            if _wait(lambda: _has_task(sb, phone[1:]), poll + 30):
                out.append(time.monotonic() - t0)
    finally:
        _stop(proc)
        crm.dispose()
    return {"scenario": "lead", "crm_poll_s": poll, **_quantiles(out)}


def _utc_naive():
    from datetime import UTC, datetime
    return datetime.now(UTC).replace(tzinfo=None)


def bench_webhook(tmp: Path, sb: Any, n: int) -> dict[str, Any]:
    from tests.fakes.bitrix24 import running_bitrix24

    port = _free_port()
    with running_bitrix24() as fake:
        config = demo_config(tmp, sb.url, sb.token, interval="60s")
        config["daemon"].update(http_listen=f"127.0.0.1:{port}", push_interval="30s")
        config["crm"] = {"connector": "bitrix24", "poll_interval": "60s",
                         "options": {"webhook_url": fake.webhook_url, "application_token": APP_TOKEN}}
        config["contacts"]["fields"] = {"name": {"crm": "NAME", "okitoki": "name", "sync": "both"},
                                        "status": {"crm": "UF_CRM_STATUS", "okitoki": "details.status",
                                                   "sync": "to_okitoki"}}
        config["do_not_call"] = {}
        proc = _start(tmp, config)
        out: list[float] = []
        try:
            _ready(sb)
            fake.state.webhooks.subscribe(f"http://127.0.0.1:{port}/events/crm", application_token=APP_TOKEN)
            for i in range(n):
                time.sleep(random.uniform(1.0, 3.0))
                phone = f"+38067{5560000 + i:07d}"
                t0 = time.monotonic()
                fake.state.add_contact((phone,), NAME=f"Lead {i}", UF_CRM_STATUS="new")
                if _wait(lambda: _has_task(sb, phone[1:]), 90):
                    out.append(time.monotonic() - t0)
        finally:
            _stop(proc)
    return {"scenario": "webhook", "crm_poll_s": 60, **_quantiles(out)}


def bench_call(tmp: Path, sb: Any, n: int, visible_after: tuple[float, float]) -> dict[str, Any]:
    port = _free_port()
    crm = SqlCrm(f"sqlite:///{tmp / 'crm.db'}").create()
    phones = [f"+38067{5570000 + i:07d}" for i in range(n)]
    with crm.engine.begin() as conn:
        conn.execute(crm.contacts.insert(), [dict(name=f"Caller {i}", phone=p, status="contacted",
                                                  do_not_call=False, updated_at=_utc_naive())
                                             for i, p in enumerate(phones)])
    config = demo_config(tmp, sb.url, sb.token, interval="60s")
    config["daemon"].update(http_listen=f"127.0.0.1:{port}", push_interval="30s")
    config["crm"]["poll_interval"] = "5s"
    config["okitoki"]["webhook_token"] = HOOK_TOKEN
    sb.add_webhook(event="call_finished", url=f"http://127.0.0.1:{port}/events/okitoki", method="GET",
                   template="event=call_finished&session_id={session_id}", params={"token": HOOK_TOKEN})
    proc = _start(tmp, config)
    out: list[float] = []
    try:
        _ready(sb)
        _wait(lambda: len([c for c in sb.state()["contacts"] if str(c.get("name", "")).startswith("Caller")]) >= n, 60)
        for i, phone in enumerate(phones):
            time.sleep(random.uniform(1.0, 3.0))
            delay = round(random.uniform(*visible_after), 2)
            call = sb.add_call(phone=phone[1:], direction="in", outcome="answered", settle_delay=f"{delay:g}s")
            sid = str(call["session_id"])
            readable = time.monotonic() + delay
            if _wait(lambda: any(str(r.get("session_id")) == sid for r in crm.calls()), delay + 90):
                out.append(max(0.0, time.monotonic() - readable))
    finally:
        _stop(proc)
        crm.dispose()
    return {"scenario": "call", "okitoki_poll_s": 60, "visible_after_s": list(visible_after), **_quantiles(out)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenario", choices=["lead", "webhook", "call"], required=True)
    parser.add_argument("--n", type=int, default=20, help="leads or calls to time (20)")
    parser.add_argument("--poll", type=float, default=5.0, help="CRM poll interval, lead scenario (5)")
    parser.add_argument("--visible-after", default="3",
                        help="seconds from hangup until the call is readable in the log: N, or A-B "
                             "for a uniform draw per call (3)")
    args = parser.parse_args()
    random.seed(7)
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-latency-")))
        sb = stack.enter_context(sandbox_process())
        if args.scenario == "lead":
            result = bench_lead(tmp, sb, args.n, args.poll)
        elif args.scenario == "webhook":
            result = bench_webhook(tmp, sb, args.n)
        else:
            low, _, high = args.visible_after.partition("-")
            result = bench_call(tmp, sb, args.n, (float(low), float(high or low)))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
