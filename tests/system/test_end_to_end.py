"""Every flow, end to end: the sandbox in its own process, ``syncd run`` as a subprocess, a
SQL CRM on a SQLite file. Nothing in between is mocked."""

from __future__ import annotations

import json
import time

import pytest

from syncd.demo_data import demo_contacts
from syncd.testing.convergence import e164
from tests.daemon_checks import okitoki_writes

from .harness import deploy, stop

pytestmark = pytest.mark.slow

_writes = okitoki_writes


def test_every_flow_reaches_both_sides_and_a_quiet_cycle_writes_nothing(tmp_path, sandbox_proc) -> None:
    sb = sandbox_proc
    dep = deploy(tmp_path, sb, demo_contacts(60, seed=3))
    proc = dep.start()
    try:
        verdict = dep.wait_converged(90)
        assert verdict.ok, verdict.problems
        assert verdict.stats["contacts_linked"] >= 50

        # rows 0 and 1 of the demo data share one number (a duplicate pair): not these
        rows = [r for r in dep.crm.all()[2:] if r["status"] == "new" and e164(r["phone"])]
        answered, unanswered, dnc, qualified = rows[0], rows[1], rows[2], rows[3]
        dep.crm.update(qualified["id"], status="qualified")
        dep.wait_converged(60)
        tasks = {t["phones"][0]: t for t in sb.state()["tasks"] if t["status"] == "pending"}

        def task_of(row):
            return next(t for p, t in tasks.items() if e164(p) == e164(row["phone"]))

        sb.add_call(phone=task_of(answered)["phones"][0], direction="dialer", outcome="answered",
                    duration=95, dialer_id=101, task_id=task_of(answered)["id"], user_id=1)
        sb.add_call(phone=task_of(unanswered)["phones"][0], direction="dialer", outcome="no_answer",
                    duration=0, dialer_id=101, task_id=task_of(unanswered)["id"], user_id=1)
        sb.add_call(phone=qualified["phone"], direction="in", outcome="no_answer", duration=0)
        dep.crm.update(dnc["id"], do_not_call=True)
        linked = json.loads(dep.syncd("status", "--json").stdout)
        assert linked  # status works while the daemon runs

        verdict = dep.wait_converged(90)
        assert verdict.ok, verdict.problems
        assert dep.crm.get(answered["id"])["status"] == "contacted"      # outcome → status
        assert dep.crm.get(unanswered["id"])["status"] == "callback"     # and into dialer 102
        assert dep.crm.get(qualified["id"])["status"] == "qualified"     # never backwards
        calls = dep.crm.calls()
        assert len(calls) == 3 and len({c["session_id"] for c in calls}) == 3
        assert stop(proc) == 0
        _every_job_line_names_its_job(tmp_path / "syncd.log")
    finally:
        if proc.poll() is None:
            proc.kill()

    before = _writes(sb)
    for _ in range(2):
        result = dep.syncd("once", "--json")
        assert result.returncode == 0, result.stderr
    assert _writes(sb) == before, "a cycle with nothing new wrote to Oki-Toki (echo)"
    assert dep.verdict().ok


def test_an_edit_in_okitoki_reaches_the_crm_and_is_not_echoed_back(tmp_path, sandbox_proc) -> None:
    sb = sandbox_proc
    dep = deploy(tmp_path, sb, demo_contacts(20, seed=5))
    assert dep.syncd("once").returncode == 0
    assert dep.syncd("once").returncode == 0
    from syncd.store import open_store
    from syncd.testing.convergence import linked_pairs

    store = open_store(dep.state_url)
    crm_id, ok_id = sorted(linked_pairs(store).items())[0]
    store.engine.dispose()
    time.sleep(1.1)
    sb.edit_contact(int(ok_id), name="Edited By An Agent")
    for _ in range(2):
        assert dep.syncd("once").returncode == 0
    assert dep.crm.get(int(crm_id))["name"] == "Edited By An Agent"
    before = _writes(sb)
    assert dep.syncd("once").returncode == 0
    assert _writes(sb) == before


def _every_job_line_names_its_job(log_file) -> None:
    """The daemon's JSON log (what journald gets): each line of a job run says which job and
    which run it belongs to, the daemon's own job_* lines included."""
    lines = [json.loads(line) for line in log_file.read_text().splitlines() if line.startswith("{")]
    job_lines = [l for l in lines if l.get("event", "").startswith("job_") or "run_id" in l]
    assert any(l["event"] == "job_finished" for l in job_lines)
    unnamed = [l for l in job_lines if not l.get("job") or not l.get("run_id")]
    assert not unnamed, unnamed[:5]
