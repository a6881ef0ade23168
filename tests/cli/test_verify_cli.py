"""``syncd verify`` from the console script, against the real sandbox and a SQL CRM file:
JSON and table output, exit codes (0 / 1 drift / 75 incomplete / 78 config), the report in
``syncd status``."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from cfgkit import write
from syncd.cli import main
from syncd.demo_data import DemoContact
from syncd.testing.scenario import SqlCrm


@pytest.fixture
def world(tmp_path, sandbox):
    crm = SqlCrm(f"sqlite:///{tmp_path / 'crm.db'}").create()
    crm.insert([DemoContact("Oksana Lysenko", "+380 67 100 20 30", None, "ok@x.ua", "UA", "won"),
                DemoContact("Jan Kowalski", "48 601 234 567", None, None, "PL", "new")])
    cfg = {
        "daemon": {"state_url": f"sqlite:///{tmp_path / 'state.db'}", "log_format": "json"},
        "okitoki": {"url": sandbox.url, "api_token": sandbox.token, "requests_per_minute": 100000},
        "crm": {"connector": "sql", "options": {"url": crm.url, "phone_columns": ["phone", "phone2"]}},
        "contacts": {"default_region": "UA", "create_in_okitoki": True, "create_in_crm": True,
                     "fields": {"name": {"crm": "name", "okitoki": "name"},
                                "status": {"crm": "status", "okitoki": "details.status",
                                           "sync": "to_okitoki"}}},
        "dialer": [{"name": "new-leads", "dialer_id": 101, "when": {"status": ["new"]}}],
        "calls": {"to_crm": False, "settle_delay": "0s"},
        "verify": {"calls_days": 1},
    }
    path = write(tmp_path, cfg)
    assert main(["migrate", "-c", str(path)]) == 0
    for _ in range(3):
        assert main(["once", "-c", str(path)]) == 0
    yield path, crm, sandbox, cfg, tmp_path
    crm.dispose()


def _json(capsys) -> dict:
    return json.loads(capsys.readouterr().out)


def test_verify_json_exit_0_without_drift_and_1_with_it_until_repaired(world, capsys):
    path, crm, sb, _, _ = world
    capsys.readouterr()
    assert main(["verify", "--json", "-c", str(path)]) == 0
    report = _json(capsys)
    assert report["drift"] == 0 and report["complete"] and set(report["counts"]) >= {
        "crm_unlinked", "gone_crm", "gone_okitoki", "values_differ", "task_missing",
        "task_orphan", "call_missing", "okitoki_unlinked"}
    with crm.engine.begin() as conn:   # behind the cursor's back
        conn.execute(crm.contacts.insert().values(name="Old Row", phone="+380 67 777 88 99",
                                                  status="won", do_not_call=False,
                                                  updated_at=datetime(2001, 1, 1)))
    assert main(["verify", "--json", "-c", str(path)]) == 1
    report = _json(capsys)
    assert report["counts"]["crm_unlinked"] == 1 and not report["repairs"]
    assert main(["verify", "--repair", "--json", "-c", str(path)]) == 1   # found (and repaired)
    assert _json(capsys)["repairs"] == {"crm_unlinked": 1}
    for _ in range(2):
        assert main(["once", "-c", str(path)]) == 0
    assert any(c["name"] == "Old Row" for c in sb.state()["contacts"])
    capsys.readouterr()
    assert main(["verify", "--json", "-c", str(path)]) == 0


def test_verify_prints_a_table_and_status_shows_the_last_report(world, capsys):
    path, crm, sb, _, _ = world
    with crm.engine.begin() as conn:
        conn.execute(crm.contacts.delete().where(crm.contacts.c.name == "Oksana Lysenko"))
    capsys.readouterr()
    assert main(["verify", "-c", str(path)]) == 1
    out = capsys.readouterr()
    lines = out.out.splitlines()
    assert lines[0].startswith("verify (report only): complete, 1 record(s) in drift")
    assert any(l.split()[:3] == ["gone_crm", "1", "0"] and "crm:" in l for l in lines)
    assert "syncd verify --repair" in out.out and sb.token not in out.out + out.err
    assert main(["status", "--json", "-c", str(path)]) == 0
    status = _json(capsys)
    assert status["drift"]["counts"]["gone_crm"] == 1 and status["drift"]["complete"] is True
    assert set(status["streams"]) == {"pull:crm:contacts", "pull:okitoki:contacts",
                                      "pull:okitoki:calls", "push", "verify"}


def test_verify_cut_short_by_the_budget_exits_75(world, capsys):
    path, _, _, cfg, tmp_path = world
    cfg["okitoki"]["daily_request_budget"] = 10     # `once` spent more than 90 % of it already
    low = write(tmp_path, cfg, name="low.toml")
    capsys.readouterr()
    assert main(["verify", "--json", "-c", str(low)]) == 75
    report = _json(capsys)
    assert report["complete"] is False and any("okitoki budget low" in n for n in report["notes"]), report["notes"]


@pytest.mark.parametrize("key, value", [("interval", "3x"), ("calls_days", 99), ("interval", "-5m"),
                                        ("colour", 1)])
def test_bad_verify_keys_exit_78_naming_the_key(world, capsys, key, value):
    path, _, _, cfg, tmp_path = world
    cfg["verify"] = {key: value}
    bad = write(tmp_path, cfg, name="bad.toml")
    assert main(["verify", "-c", str(bad)]) == 78
    assert f"verify.{key}" in capsys.readouterr().err


def test_progress_is_shown_on_a_terminal_only():
    import io

    from syncd.cli_verify import terminal_progress

    assert terminal_progress(io.StringIO()) is None          # a pipe or a file: silent

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    show = terminal_progress(tty, every=0)
    show("crm", 12300)
    show("okitoki", 500)
    assert "verify: 12,300 CRM contacts checked" in tty.getvalue()
    assert tty.getvalue().count("\r") == 2                    # one line, rewritten
