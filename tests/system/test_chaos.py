"""Chaos: with at least 20% injected faults (5xx, 429 with Retry-After, timeouts, malformed
bodies) the daemon reaches the same end state, and no request went out before a
Retry-After it was given had expired."""

from __future__ import annotations

import random

import pytest

from syncd.demo_data import demo_contacts

from .harness import deploy, stop

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

FAULTS = [
    {"kind": "status", "status": 503, "rate": 0.06},
    {"kind": "status", "status": 500, "rate": 0.03},
    {"kind": "retry_after", "rate": 0.05, "seconds": 1, "form": "seconds"},
    {"kind": "retry_after", "rate": 0.02, "seconds": 1, "form": "http-date"},
    {"kind": "timeout", "rate": 0.01, "seconds": 6},
    {"kind": "timeout", "rate": 0.01, "seconds": 6, "apply": True},    # done, but no answer
    {"kind": "truncated_json", "rate": 0.01},
    {"kind": "truncated_json", "rate": 0.01, "apply": True},
    {"kind": "html", "rate": 0.01},
    {"kind": "error_200", "rate": 0.01},
]


def test_faults_on_a_fifth_of_requests_change_nothing_in_the_end_state(tmp_path, sandbox_proc) -> None:
    assert sum(f["rate"] for f in FAULTS) >= 0.2
    sb = sandbox_proc
    people = demo_contacts(160, seed=13)
    dep = deploy(tmp_path, sb, people, okitoki={"timeout": "3s"})
    rnd = random.Random(5)
    phones = [p.phone for p in people if p.phone]
    for _ in range(40):
        sb.add_call(phone=rnd.choice(phones), direction="in", outcome="answered", duration=42)
    sb.set_faults(FAULTS, seed=1234)
    proc = dep.start()
    try:
        verdict = dep.wait_converged(240)
        report = sb.requests(limit=1)
        sb.clear_faults()
        assert verdict.ok, verdict.problems
        assert stop(proc) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert int(report["by_status"].get("429", 0)) > 0 and int(report["by_status"].get("503", 0)) > 0
    assert report["early_retries"] == 0, "a request went out before its Retry-After expired"
    _no_secret_anywhere(dep, sb.token)


def _no_secret_anywhere(dep, token: str) -> None:
    """After a run full of failures: the token is in no log line, no CLI output, and no byte
    of the state database (its WAL included)."""
    outputs = [dep.syncd("status", "--json"), dep.syncd("status"), dep.syncd("dead-letters", "list"),
               dep.syncd("conflicts")]
    for result in outputs:
        assert result.returncode == 0, result.stderr
        assert token not in result.stdout + result.stderr
    log = (dep.tmp / "syncd.log").read_text(encoding="utf-8")
    assert "error" in log and token not in log
    for path in dep.tmp.glob("state.db*"):
        assert token.encode() not in path.read_bytes(), f"the token is stored in {path.name}"

