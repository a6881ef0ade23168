"""The sandbox as a command: prints its URL, keeps state in --data across restarts, stops cleanly."""

from __future__ import annotations

import json
import signal

import httpx

from syncd.testing.sandbox import running_sandbox, sandbox_process

from .conftest import api

PHONE = "380671112233"


def test_restart_with_data_file_keeps_state(tmp_path):
    data = tmp_path / "sandbox.json"
    with sandbox_process(data_file=data) as sb:
        task_id = api(sb, "dialers/create_task", dialer_id=101, phones=PHONE).json()["task_id"]
        contact_id = api(sb, "contacts/add-update", name="Kept", phones=PHONE).json()["contact_id"]
        assert api(sb, "lists/add", list_id=7, values=PHONE).json()["added"] == 1
        sid = sb.add_call(phone=PHONE)["session_id"]
        proc = sb.process
    assert proc.returncode == 0  # SIGTERM is a clean stop
    assert json.loads(data.read_text())["version"] == 1
    with sandbox_process(data_file=data) as sb:
        state = sb.state()
        assert [t["id"] for t in state["tasks"]] == [task_id]
        assert any(c["id"] == contact_id and c["name"] == "Kept" for c in state["contacts"])
        # the uniqueness index is rebuilt from the file
        assert api(sb, "dialers/create_task", dialer_id=101, phones=PHONE).status_code == 422
        assert api(sb, "lists/check", "GET", list_id=7, value=PHONE).json() == {"exists": True}
        assert api(sb, "calls/data", "GET", session_id=sid).status_code == 200
        # new ids continue after the old ones
        assert api(sb, "dialers/create_task", dialer_id=102, phones=PHONE).json()["task_id"] > task_id


def test_sigint_stops_the_process_cleanly(tmp_path):
    with sandbox_process() as sb:
        assert httpx.get(f"{sb.url}/_sandbox/health").json()["ok"] is True
        sb.process.send_signal(signal.SIGINT)
        assert sb.process.wait(15) == 0


def test_thread_sandbox_writes_its_data_file_on_stop(tmp_path):
    data = tmp_path / "state.json"
    with running_sandbox(data_file=data) as sb:
        api(sb, "contacts/add-update", name="Persisted")
    names = [c["name"] for c in json.loads(data.read_text())["contacts"]]
    assert "Persisted" in names


def test_admin_token_guards_the_admin_surface():
    with running_sandbox(admin_token="adm-secret-1") as sb:
        assert httpx.get(f"{sb.url}/_sandbox/state").status_code == 401
        assert sb.state()["companies"][0]["id"] == 1  # the handle sends the bearer token
        assert api(sb, "dialers/stat", "GET").status_code == 200  # the API is not affected


def test_reset_returns_to_the_seeded_start(sandbox):
    api(sandbox, "dialers/create_task", dialer_id=101, phones=PHONE)
    sandbox.set_rate_limit(1)
    sandbox.reset()
    state = sandbox.state()
    assert state["tasks"] == [] and [d["id"] for d in state["dialers"]] == [101, 102]
    assert sandbox.requests()["total"] == 0
    assert api(sandbox, "dialers/stat", "GET").status_code == 200
    assert api(sandbox, "dialers/stat", "GET").status_code == 200


def test_the_syncd_command_runs_the_sandbox(tmp_path):
    from syncd.cli import build_parser
    args = build_parser().parse_args(["sandbox", "--port", "0", "--token", "abcdef", "--seed", "demo"])
    assert args.port == 0 and args.token == "abcdef" and args.settle_delay == "0s"


def test_reset_restores_the_settings_the_sandbox_started_with():
    with running_sandbox(settle_delay="5s") as sb:
        sb.set_settings(settle_delay="60s", call_update_delay="1s")
        sb.reset()
        settings = sb.set_settings()
        assert settings["settle_delay"] == 5.0 and settings["call_update_delay"] is None


def test_the_journal_reports_arrivals_per_second(sandbox):
    for _ in range(3):
        api(sandbox, "dialers/stat", "GET")
    report = sandbox.requests()
    assert sum(report["per_second"].values()) == 3 and len(report["arrivals"]) == 3
    assert report["max_per_second"] >= 1 and report["by_status"] == {"200": 3}
