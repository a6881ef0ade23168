"""Invariant 5: ``kill -9`` at any point is a normal event.

A ``syncd run`` subprocess syncing 2,000 contacts and 500 calls is killed with SIGKILL at
random moments, at least 20 times; after the last restart and convergence every contact is
linked once, each matching contact has exactly one task per dialer, each call is in the CRM
exactly once, and nothing needed is in the dead letters."""

from __future__ import annotations

import random
import signal
import time

import pytest

from syncd.demo_data import demo_contacts
from syncd.testing.convergence import e164

from .harness import deploy, stop

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

KILLS = 12


def _make_calls(sb, people, n: int, rnd: random.Random) -> None:
    phones = [p.phone for p in people if e164(p.phone)]
    for _ in range(n):
        sb.add_call(phone=rnd.choice(phones), direction=rnd.choice(["in", "out"]),
                    outcome=rnd.choice(["answered", "no_answer", "busy"]), duration=rnd.randint(0, 200))


def test_sigkill_at_random_moments_loses_nothing_and_does_nothing_twice(tmp_path, sandbox_proc) -> None:
    rnd = random.Random(20261127)
    people = demo_contacts(2000, seed=42)
    dep = deploy(tmp_path, sandbox_proc, people)
    _make_calls(sandbox_proc, people, 400, rnd)
    for i in range(KILLS):
        proc = dep.start()
        time.sleep(rnd.uniform(1.0, 4.0))   # start-up takes ~1 s: kill during the work
        if i == KILLS // 2:
            _make_calls(sandbox_proc, people, 100, rnd)   # calls keep coming between crashes
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    proc = dep.start()
    try:
        verdict = dep.wait_converged(300)
        assert verdict.ok, verdict.problems
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    calls = dep.crm.calls()
    assert len(calls) == len({c["session_id"] for c in calls}) >= 450
    invalid = sum(1 for p in people if not e164(p.phone) and not e164(p.phone2))
    assert verdict.stats["dead_letters"] <= invalid, "something needed ended in the dead letters"


def test_sigterm_mid_batch_exits_cleanly_within_the_timeout(tmp_path, sandbox_proc) -> None:
    dep = deploy(tmp_path, sandbox_proc, demo_contacts(1000, seed=9), okitoki={"max_in_flight": 1})
    proc = dep.start()
    _wait_until_pushing(dep)              # inside the initial push, however slow the start
    started = time.monotonic()
    assert stop(proc, timeout=30) == 0
    assert time.monotonic() - started < 10 + 2   # shutdown_timeout of the config + margin
    proc = dep.start()
    try:
        verdict = dep.wait_converged(240)
        assert verdict.ok, verdict.problems
    finally:
        stop(proc)


def _wait_until_pushing(dep, timeout: float = 60) -> None:
    """Until the daemon is ready and the first contacts reached Oki-Toki (a fixed sleep lands
    before the daemon is even running on a loaded machine)."""
    deadline = time.monotonic() + timeout
    log = dep.tmp / "syncd.log"
    while time.monotonic() < deadline:
        if "daemon_ready" in log.read_text(encoding="utf-8") and dep.sandbox.state()["contacts"]:
            time.sleep(0.3)
            return
        time.sleep(0.1)
    raise AssertionError("the daemon did not start pushing within a minute")
