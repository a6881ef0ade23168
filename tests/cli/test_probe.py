"""``syncd probe`` against the sandbox: a clean profile is all green and leaves the account as
it was; each kind of mismatch a real account may show is found and named with its profile
key; the request cap holds; ``--save`` masks secrets and phones and ``sandbox --replay`` serves
the saved answers back so the same table comes out here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from syncd.cli import main
from syncd.demo import demo_config
from syncd.okitoki.probe import PROBE_PHONE
from syncd.okitoki.profile import load_profile
from syncd.okitoki.sandbox.replay import load_replay, replay_app
from syncd.okitoki.sandbox.server import ThreadedServer
from syncd.testing.sandbox import running_sandbox, sandbox_process
from syncd.testing.scenario import to_toml

TOKEN = "probe-token-6d2f9a"


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(to_toml(demo_config(tmp_path, url, TOKEN)), encoding="utf-8")
    path.chmod(0o600)
    return path


def _probe(capsys, config: Path, *extra: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = main(["probe", "-c", str(config), "--json", *extra])
    out = capsys.readouterr()
    return code, json.loads(out.out)


def _keys(report: dict) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for step in report["steps"]:
        for f in step["findings"]:
            if f["severity"] != "info":
                found.setdefault(step["operation"], set()).add(f["key"])
    return found


def _sandbox(tmp_path: Path, text: str | None):
    profile = None
    if text is not None:
        (tmp_path / "served.toml").write_text(text, encoding="utf-8")
        profile = load_profile(tmp_path / "served.toml")
    return running_sandbox(TOKEN, profile=profile)


def test_a_clean_profile_is_all_green_and_the_writes_are_undone(tmp_path, capsys) -> None:
    with _sandbox(tmp_path, None) as sb:
        sb.add_call(phone="380501112233", direction="in", outcome="answered", duration=5)
        config = _config(tmp_path, sb.url)
        code, report = _probe(capsys, config, "--writes", "--dialer", "101", "--list", "7")
        assert code == 0, report
        assert report["verdict"] == "ok" and _keys(report) == {}
        assert {s["operation"] for s in report["steps"]} == {
            "dialers", "call_log", "call_data", "export_contacts", "list_check", "create_task",
            "remove_task", "add_tasks", "list_add", "list_remove", "call_log page 2",
            "export_contacts page 2"}
        assert all(s["status"] == 200 for s in report["steps"])
        # 11 requests, and page 2 of the call log and of the contacts (paging obeyed)
        assert report["requests"] == report["planned"] == len(report["steps"]) == 13
        assert "upsert_contact" in report["skipped"]
        state = sb.state()
        assert all(t["status"] == "deleted" for t in state["tasks"] if PROBE_PHONE in t["phones"])
        assert PROBE_PHONE not in next(lst for lst in state["lists"] if lst["id"] == 7)["values"]
        assert sb.requests()["total"] == 13


def test_without_writes_only_reads_are_made(tmp_path, capsys) -> None:
    with _sandbox(tmp_path, None) as sb:
        code, report = _probe(capsys, _config(tmp_path, sb.url))
        assert code == 0
        assert {s["method"] for s in report["steps"]} == {"GET"}
        assert "--writes" in report["skipped"]["create_task"]
        assert not [t for t in sb.state()["tasks"]]
        # no call in the window: call_data is reported, not requested
        [data] = [s for s in report["steps"] if s["operation"] == "call_data"]
        assert data["status"] is None and "not probed" in data["note"]
        # page 2 of the contacts is read (page 1 held one), of the empty call log not
        assert sb.requests()["total"] == report["requests"] == 5


MISMATCHES = {
    "404 path": ('[operations.call_log]\npath = "/api/v1/calls/history"\n',
                 "call_log", "operations.call_log.path"),
    "405 method": ('[operations.list_check]\nmethod = "POST"\n',
                   "list_check", "operations.list_check.method"),
    "renamed record field": ('[operations.call_log.record]\nsession_id = "call_id"\n',
                             "call_log", "operations.call_log.record.session_id"),
    "renamed answer field": ('[operations.list_check.response]\nexists = "found"\n',
                             "list_check", "operations.list_check.response.exists"),
    "other request date format": ('[dates]\nformat = "%Y-%m-%d %H:%M:%S"\n',
                                  "export_contacts", "dates.format"),
    "other answer date format": ('[operations.export_contacts]\nanswer_date_format = "iso"\n',
                                 "export_contacts", "dates.format"),
    "other page size variable": ('[operations.export_contacts.paging]\nper_page = "limit"\n',
                                 "export_contacts", "operations.export_contacts.paging.per_page"),
    "other page count field": ('[operations.export_contacts.paging]\npages = "last_page"\n',
                               "export_contacts", "operations.export_contacts.paging.pages"),
    # the account reads its page number from another variable: ours is ignored, and page 2
    # answers page 1's record again
    "page number ignored": ('[operations.call_log.paging]\npage = "p"\n',
                            "call_log page 2", "operations.call_log.paging.page"),
}


@pytest.mark.parametrize("served, operation, key", MISMATCHES.values(), ids=list(MISMATCHES))
def test_each_kind_of_mismatch_is_found_and_named_with_its_key(tmp_path, capsys, served, operation, key) -> None:
    with _sandbox(tmp_path, served) as sb:
        sb.add_call(phone="380501112233", direction="in", outcome="answered", duration=5)
        code, report = _probe(capsys, _config(tmp_path, sb.url))
        assert code == 1 and report["verdict"] == "mismatch"
        assert key in _keys(report).get(operation, set()), report["steps"]
        [row] = [s for s in report["steps"] if s["operation"] == operation]
        assert row["verdict"] == "mismatch"
        others = {op for op, keys in _keys(report).items() if op != operation}
        # call_data shares the call's record; [dates] format is every operation's
        assert others <= ({"call_data", "call_log"} if key == "dates.format" else {"call_data"}), _keys(report)


def test_the_table_names_the_key_to_change(tmp_path, capsys) -> None:
    with _sandbox(tmp_path, MISMATCHES["renamed record field"][0]) as sb:
        sb.add_call(phone="380501112233", direction="in", outcome="answered", duration=5)
        assert main(["probe", "-c", str(_config(tmp_path, sb.url))]) == 1
        out = capsys.readouterr().out
        assert out.startswith("probe: 7 request(s)")  # 5 planned reads and 2 second pages
        assert "operations.call_log.record.session_id" in out and 'call_id' in out
        assert "MISMATCH" in out


def test_the_request_cap_is_never_exceeded(tmp_path, capsys) -> None:
    with _sandbox(tmp_path, None) as sb:
        code, report = _probe(capsys, _config(tmp_path, sb.url), "--max-requests", "2",
                              "--writes", "--dialer", "101", "--list", "7")
        assert report["planned"] == 2 and sb.requests()["total"] <= 2
        assert "over the request cap (2)" in report["skipped"]["create_task"]
        assert not [t for t in sb.state()["tasks"]]   # a write without its undo is never made


def test_saved_exchanges_are_masked_and_replay_reproduces_the_mismatch(tmp_path, capsys) -> None:
    save = tmp_path / "saved"
    with _sandbox(tmp_path, MISMATCHES["renamed record field"][0]) as sb:
        sb.add_call(phone="380501112233", direction="in", outcome="answered", duration=5)
        config = _config(tmp_path, sb.url)
        _, first = _probe(capsys, config, "--save", str(save))
    text = "".join(p.read_text() for p in save.glob("*.json"))
    assert TOKEN not in text and "380501112233" not in text and "olena@example.com" not in text
    assert "**********33" in text
    assert (save / "probe.json").exists() and len(list(save.glob("[0-9][0-9]-*.json"))) == 6

    with sandbox_process(TOKEN, seed=None, extra_args=["--replay", str(save)]) as replayed:
        _, again = _probe(capsys, _config(tmp_path, replayed.url))
    assert _keys(again)["call_log"] == _keys(first)["call_log"] == {"operations.call_log.record.session_id"}
    assert [(s["operation"], s["status"]) for s in again["steps"]] == \
        [(s["operation"], s["status"]) for s in first["steps"]]


def test_replay_answers_in_the_recorded_order_and_404_for_the_rest(tmp_path) -> None:
    import httpx
    for n, status in enumerate((200, 500), 1):
        (tmp_path / f"{n:02d}-dialers.json").write_text(json.dumps({
            "operation": "dialers", "request": {"method": "GET", "path": "/api/v1/dialers/stat", "params": {}},
            "response": {"status": status, "content_type": "application/json", "body": {"n": n}}}))
    server = ThreadedServer(replay_app(load_replay(tmp_path)))
    url = server.start()
    try:
        got = [httpx.get(f"{url}/api/v1/dialers/stat") for _ in range(3)]
        assert [(r.status_code, r.json()["n"]) for r in got] == [(200, 1), (500, 2), (500, 2)]
        assert httpx.post(f"{url}/api/v1/dialers/stat").status_code == 404
    finally:
        server.stop()


def test_replay_of_an_empty_directory_is_a_config_problem(tmp_path, capsys) -> None:
    from syncd.okitoki.sandbox.cli import main as sandbox_main
    assert sandbox_main(["--replay", str(tmp_path), "--port", "0"]) == 78
    assert "holds no recorded exchanges" in capsys.readouterr().err


def test_the_probe_stays_within_what_is_left_of_todays_budget(tmp_path, capsys) -> None:
    with _sandbox(tmp_path, None) as sb:
        sb.add_call(phone="380501112233", direction="in", outcome="answered", duration=5)
        config = demo_config(tmp_path, sb.url, TOKEN)
        config["okitoki"]["daily_request_budget"] = 3
        path = tmp_path / "config.toml"
        path.write_text(to_toml(config), encoding="utf-8")
        path.chmod(0o600)
        assert main(["migrate", "-c", str(path)]) == 0
        code, report = _probe(capsys, path)
        assert report["planned"] == report["requests"] == 3 == sb.requests()["total"]
        assert "over the request cap (3)" in report["skipped"]["list_check"]
        _, again = _probe(capsys, path)        # the shared budget is spent for today
        assert again["planned"] == 0 and sb.requests()["total"] == 3


def test_a_refused_token_stops_the_probe_after_one_request(tmp_path, capsys) -> None:
    with _sandbox(tmp_path, None) as sb:
        config = demo_config(tmp_path, sb.url, "not-the-token-0000")
        path = tmp_path / "config.toml"
        path.write_text(to_toml(config), encoding="utf-8")
        path.chmod(0o600)
        code, report = _probe(capsys, path)
        assert code == 1 and report["verdict"] == "failed"
        [step] = report["steps"]
        assert step["status"] == 401 and "token" in step["note"]
        assert "the token was refused" in report["skipped"]["call_log"]
        assert sb.requests()["total"] == 1
        assert "not-the-token-0000" not in json.dumps(report)
