"""`syncd journal` and `syncd history`: the API journal and the job runs, filtered, grouped
(with the cost of Oki-Toki requests) and exported as table, CSV, JSON, XLSX and one
self-contained HTML file that a real browser renders (table and chart)."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert

from cfgkit import base, write
from syncd.cli import main
from syncd.reports import parse_when
from syncd.store import open_store
from syncd.store.tables import ApiCall, Run

NOW = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)


@pytest.fixture
def journal_cfg(tmp_path):
    state = f"sqlite:///{tmp_path / 'state.db'}"
    store = open_store(state, create=True)
    rows = []
    for h in range(3):   # three hours of traffic
        at = NOW - timedelta(hours=h)
        rows += [dict(at=at, system="okitoki", operation="create_task", method="POST", status=200,
                      duration_ms=120, attempt=1, error=None) for _ in range(4 + h)]
        rows += [dict(at=at, system="okitoki", operation="call_log", method="GET", status=429,
                      duration_ms=30, attempt=2, error="429 Too Many Requests")]
        rows += [dict(at=at, system="crm", operation="upsert_contacts", method="POST", status=None,
                      duration_ms=15000, attempt=1, error="=HYPERLINK(\"http://x\")")]
    rows.append(dict(at=NOW - timedelta(days=3), system="okitoki", operation="old", method="GET",
                     status=200, duration_ms=1, attempt=1, error=None))
    with store.begin() as conn:
        conn.execute(insert(ApiCall.__table__), rows)
        conn.execute(insert(Run.__table__), [
            dict(job="pull:crm:contacts", instance="a", started_at=NOW - timedelta(minutes=m),
                 duration_ms=100 + m, counts={"read": m}, errors=[] if m % 3 else ["Throttled: 429"])
            for m in range(9)])
    store.close()
    cfg = base()
    cfg["daemon"]["state_url"] = state
    cfg["okitoki"]["price_per_request"] = 0.5
    return write(tmp_path, cfg)


def _run(capsys, *args) -> str:
    assert main(list(args)) == 0
    return capsys.readouterr().out


def test_terminal_table_lists_the_last_day_in_time_order(journal_cfg, capsys):
    out = _run(capsys, "journal", "-c", str(journal_cfg))
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["time", "system", "operation"]
    assert lines[-1] == "(21 rows)"       # 15 create_task + 3 call_log + 3 upsert; not the old one
    assert "old" not in out


def test_filters_by_system_operation_and_status(journal_cfg, capsys):
    out = _run(capsys, "journal", "-c", str(journal_cfg), "--system", "okitoki", "--status", "429",
               "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 3 and {r["operation"] for r in rows} == {"call_log"}
    out = _run(capsys, "journal", "-c", str(journal_cfg), "--status", "error", "--format", "json")
    data = json.loads(out)
    assert len(data) == 6 and {d["status"] for d in data} == {429, None}
    out = _run(capsys, "journal", "-c", str(journal_cfg), "--since", "7d", "--operation", "old",
               "--format", "json")
    assert [d["operation"] for d in json.loads(out)] == ["old"]


def test_csv_never_hands_a_spreadsheet_a_formula(journal_cfg, capsys):
    out = _run(capsys, "journal", "-c", str(journal_cfg), "--system", "crm", "--format", "csv")
    errors = [r["error"] for r in csv.DictReader(io.StringIO(out))]
    assert errors and all(e.startswith("'=HYPERLINK") for e in errors)


def test_grouped_counts_and_the_cost_of_okitoki_requests(journal_cfg, capsys):
    out = _run(capsys, "journal", "-c", str(journal_cfg), "--by", "system,operation", "--format", "json")
    groups = {(g["system"], g["operation"]): g for g in json.loads(out)}
    assert groups[("okitoki", "create_task")]["requests"] == 15
    assert groups[("okitoki", "create_task")]["cost"] == 7.5      # 15 x 0.5
    assert groups[("crm", "upsert_contacts")]["cost"] == 0          # CRM requests are not billed
    assert groups[("crm", "upsert_contacts")]["avg_ms"] == 15000
    by_day = json.loads(_run(capsys, "journal", "-c", str(journal_cfg), "--by", "day", "--format", "json"))
    assert sum(g["requests"] for g in by_day) == 21


def test_bad_options_are_one_line_and_exit_2(journal_cfg, capsys):
    assert main(["journal", "-c", str(journal_cfg), "--by", "colour"]) == 2
    assert "--by: colour is not one of" in capsys.readouterr().err
    assert main(["journal", "-c", str(journal_cfg), "--since", "last week"]) == 2
    assert "neither a duration" in capsys.readouterr().err
    assert main(["journal", "-c", str(journal_cfg), "--format", "xlsx"]) == 2
    assert main(["journal", "-c", str(journal_cfg), "--status", "999"]) == 2


def test_xlsx_export_opens_with_every_row(journal_cfg, tmp_path, capsys):
    from openpyxl import load_workbook

    target = tmp_path / "journal.xlsx"
    assert main(["journal", "-c", str(journal_cfg), "-o", str(target)]) == 0
    assert "21 rows written" in capsys.readouterr().err
    sheet = load_workbook(target, read_only=True).worksheets[0]
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][:3] == ("time", "system", "operation") and len(rows) == 22
    assert isinstance(rows[1][0], datetime)
    assert not list(tmp_path.glob(".journal.xlsx.*")), "temporary file left behind"


def test_history_lists_runs_with_their_state_and_groups_them(journal_cfg, capsys):
    data = json.loads(_run(capsys, "history", "-c", str(journal_cfg), "--format", "json"))
    assert len(data) == 9 and {d["state"] for d in data} == {"ok", "error"}
    errors = json.loads(_run(capsys, "history", "-c", str(journal_cfg), "--state", "error", "--format", "json"))
    assert len(errors) == 3 and all("Throttled" in d["errors"] for d in errors)
    grouped = json.loads(_run(capsys, "history", "-c", str(journal_cfg), "--by", "job,state", "--format", "json"))
    assert {(g["job"], g["state"]): g["runs"] for g in grouped} == {
        ("pull:crm:contacts", "error"): 3, ("pull:crm:contacts", "ok"): 6}


def test_html_is_one_self_contained_file(journal_cfg, tmp_path, capsys):
    target = tmp_path / "journal.html"
    assert main(["journal", "-c", str(journal_cfg), "-o", str(target)]) == 0
    html = target.read_text()
    assert "<svg" in html and html.count('class="bar"') >= 3 and html.count("<tr>") == 22
    assert not re.search(r"<script|<link|@import|url\(|src=", html), "an external or active resource"


def test_when_accepts_durations_and_utc_times():
    now = datetime(2026, 12, 1, 12, tzinfo=UTC)
    assert parse_when("24h", now) == now - timedelta(hours=24)
    assert parse_when("2026-11-30", now) == datetime(2026, 11, 30, tzinfo=UTC)
    assert parse_when("2026-11-30T10:00+02:00", now) == datetime(2026, 11, 30, 8, tzinfo=UTC)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/services installs it)")
def test_html_renders_its_table_and_chart_in_a_real_browser(journal_cfg, tmp_path, capsys):
    """Headless Chromium lays the page out: the measured chart bars and table rows have a
    size (a probe script is added to a copy; the export itself has none)."""
    target = tmp_path / "journal.html"
    assert main(["journal", "-c", str(journal_cfg), "-o", str(target)]) == 0
    probe = tmp_path / "probe.html"
    probe.write_text(target.read_text().replace("</body>", """<script>
      const size = e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
      const bars = [...document.querySelectorAll('svg.chart rect.bar')].map(size);
      const rows = [...document.querySelectorAll('table tbody tr')].map(size);
      document.body.setAttribute('data-probe', JSON.stringify({bars, rows,
        chart: size(document.querySelector('svg.chart'))}));
    </script></body>"""))
    done = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync",
                           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", probe.as_uri()],
                          capture_output=True, text=True, timeout=120)
    found = re.search(r'data-probe="([^"]*)"', done.stdout)
    assert found, done.stderr[-2000:]
    probe_data = json.loads(found.group(1).replace("&quot;", '"'))
    assert probe_data["chart"][0] > 500 and probe_data["chart"][1] > 200
    assert len(probe_data["bars"]) >= 3 and all(w > 1 and h > 0 for w, h in probe_data["bars"])
    assert len(probe_data["rows"]) == 21 and all(h > 5 for _, h in probe_data["rows"])
