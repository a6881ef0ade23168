"""A real account whose API differs from our profile in every name: the sandbox serves a
profile where paths, methods, variables, answer and record fields, paging and dates were all
changed, and ``syncd run`` configured with the same file syncs every flow through it."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd.demo_data import demo_contacts
from syncd.testing.convergence import e164
from syncd.testing.sandbox import sandbox_process

from .harness import deploy, stop

pytestmark = pytest.mark.slow

RENAMED = Path(__file__).parents[1] / "okitoki" / "profiles" / "renamed.toml"


def test_the_daemon_syncs_every_flow_through_a_renamed_profile(tmp_path) -> None:
    with sandbox_process(token="profile-system-token-3e8a", seed="demo",
                         extra_args=["--profile", str(RENAMED)]) as sb:
        dep = deploy(tmp_path, sb, demo_contacts(20, seed=11), okitoki={"profile": str(RENAMED)})
        proc = dep.start()
        try:
            verdict = dep.wait_converged(60)
            assert verdict.ok, verdict.problems
            assert verdict.stats["contacts_linked"] >= 15
            task = next(t for t in sb.state()["tasks"] if t["status"] == "pending")
            row = next(r for r in dep.crm.all() if e164(r["phone"]) == e164(task["phones"][0]))
            sb.add_call(phone=task["phones"][0], direction="dialer", outcome="answered",
                        duration=61, dialer_id=task["dialer_id"], task_id=task["id"], user_id=1)
            verdict = dep.wait_converged(60)
            assert verdict.ok, verdict.problems
            assert [c for c in dep.crm.calls() if str(c["session_id"])]
            assert dep.crm.get(row["id"])["status"] == "contacted"
            paths = {r["path"] for r in sb.requests(500)["recent"]}
            assert paths and all(p.startswith("/rest/v2/") for p in paths), paths
            assert stop(proc) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
