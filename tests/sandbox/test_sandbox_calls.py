"""Simulated calls behave like Oki-Toki's call log: late, updated once, paged by start time."""

from __future__ import annotations

from .conftest import api

PHONE = "380501112233"  # demo contact 1


def _log(sandbox, **params):
    return api(sandbox, "calls/log", "GET", **params).json()


def test_a_call_appears_only_after_the_settle_delay(sandbox):
    sandbox.set_settings(settle_delay="60s")
    call = sandbox.add_call(phone=PHONE, direction="in", outcome="answered", duration=42)
    sid = call["session_id"]
    assert isinstance(sid, int)
    assert _log(sandbox)["calls"] == []
    assert api(sandbox, "calls/data", "GET", session_id=sid).status_code == 401
    sandbox.advance_clock(61)
    [row] = _log(sandbox)["calls"]
    assert row["session_id"] == sid and row["call_type"] == "I" and row["ani"] == PHONE
    assert row["ctime"] == 42 and row["result"] == "answered" and row["contact_id"] == 1
    assert row["etime"] - row["stime"] == row["atime"] + row["ctime"]


def test_a_call_is_updated_once_after_it_appears(sandbox):
    sandbox.set_settings(settle_delay="10s", call_update_delay="30s")
    sid = sandbox.add_call(phone=PHONE, direction="out", outcome="answered")["session_id"]
    sandbox.advance_clock(11)
    first = api(sandbox, "calls/data", "GET", session_id=sid).json()
    assert first["record_url"] is None
    sandbox.advance_clock(30)
    second = _log(sandbox)["calls"][0]
    assert second["record_url"].endswith(f"/{sid}.mp3")
    sandbox.advance_clock(600)
    assert _log(sandbox)["calls"][0] == second  # only once


def test_per_call_delays_override_the_settings(sandbox):
    sid = sandbox.add_call(phone=PHONE, outcome="no_answer", settle_delay="5s")["session_id"]
    assert _log(sandbox)["calls"] == []
    sandbox.advance_clock(5)
    row = _log(sandbox)["calls"][0]
    assert row["session_id"] == sid and row["connect_time"] is None and row["ctime"] == 0
    assert row["disconnect_reason"] == "no_answer" and row["record_url"] is None


def test_a_dialer_call_for_a_task_finishes_the_task(sandbox):
    task_id = api(sandbox, "dialers/create_task", dialer_id=101, phones=PHONE).json()["task_id"]
    call = sandbox.add_call(task_id=task_id, outcome="busy")
    assert call["call_type"] == "P" and call["dialer_id"] == 101 and call["dnis"] == PHONE
    [task] = [t for t in sandbox.state()["tasks"] if t["id"] == task_id]
    assert task["status"] == "done" and task["session_id"] == call["session_id"]
    # the phone no longer blocks the dialer's uniqueness
    assert api(sandbox, "dialers/create_task", dialer_id=101, phones=PHONE).status_code == 200


def test_call_log_window_is_by_start_time_in_the_accounts_zone_and_paged(sandbox):
    base = 1767952800  # 09.01.2026 10:00:00 UTC = 12:00:00 Kyiv
    sids = [sandbox.add_call(phone=PHONE, started_at=base + 60 * i)["session_id"] for i in range(5)]
    pages, seen, page = None, [], 1
    while pages is None or page <= pages:
        body = _log(sandbox, date_from="09.01.2026 12:00:00", date_to="09.01.2026 12:04:00",
                    per_page=2, page=page)
        pages = body["pages"]
        seen += [c["session_id"] for c in body["calls"]]
        page += 1
    assert pages == 3 and seen == sids
    narrow = _log(sandbox, date_from="09.01.2026 12:01:00", date_to="09.01.2026 12:02:00")
    assert [c["session_id"] for c in narrow["calls"]] == sids[1:3]


def test_call_data_add_merges_into_the_calls_details(sandbox):
    sid = sandbox.add_call(phone=PHONE, details={"a": 1})["session_id"]
    r = api(sandbox, "calls/data/add", json_body={"session_id": sid, "data": {"crm_id": "X-1"}})
    assert r.json() == {"result": "success"}
    assert api(sandbox, "calls/data", "GET", session_id=sid).json()["details"] == {"a": 1, "crm_id": "X-1"}
    assert api(sandbox, "calls/data/add", session_id=sid).status_code == 422


def test_another_companys_call_is_401(sandbox):
    sandbox.seed(companies=[{"id": 2, "name": "Other", "users": [{"name": "B", "token": "other-token-2"}]}])
    sid = sandbox.add_call(phone=PHONE, company_id=2)["session_id"]
    assert api(sandbox, "calls/data", "GET", session_id=sid).status_code == 401
    assert api(sandbox, "calls/data", "GET", token="other-token-2", session_id=sid).status_code == 200
    assert _log(sandbox)["calls"] == []
