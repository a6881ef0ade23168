"""Invariant 5 with several requests in flight: ``kill -9`` while eight creates are on their
way (200 ms of latency each, 1,200 requests a minute) loses nothing and makes nothing twice.

Every kill strands up to ``max_in_flight`` rows whose request may or may not have reached
Oki-Toki; the restarted daemon takes the dead process's claims over and looks each record up
before creating it again."""

from __future__ import annotations

import random
import signal
import time

import pytest

from syncd.demo_data import demo_contacts

from .harness import deploy, stop

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

KILLS = 4


def test_sigkill_with_requests_in_flight_loses_nothing_and_does_nothing_twice(tmp_path, sandbox_proc) -> None:
    rnd = random.Random(20261201)
    people = demo_contacts(240, seed=11)
    dep = deploy(tmp_path, sandbox_proc, people,
                 okitoki={"requests_per_minute": 1200, "max_in_flight": 8})
    sandbox_proc.set_faults([{"kind": "latency", "seconds": 0.2, "rate": 1.0}])
    for _ in range(KILLS):
        proc = dep.start()
        time.sleep(rnd.uniform(1.5, 3.5))   # start-up takes ~1 s: kill during the push
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    proc = dep.start()
    try:
        verdict = dep.wait_converged(240)
        assert verdict.ok, verdict.problems      # includes "a contact was created twice"
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    journal = sandbox_proc.requests(limit=0)
    assert journal["by_status"].get("429", 0) == 0
    contacts = sandbox_proc.state()["contacts"]
    phones = [p for c in contacts if not c.get("deleted") for p in c["phones"]]
    assert len(phones) == len(set(phones)), "an Oki-Toki contact was created twice"
