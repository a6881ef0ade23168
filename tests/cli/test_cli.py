"""The console script: parsing, every command's wiring, exit codes, no secret in any output."""

from __future__ import annotations

import gc
import json
import threading
import types
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

import syncd.engine
import syncd.store
from cfgkit import TOKEN, FakeConnector, base, write
from syncd.cli import build_parser, main
from syncd.errors import AuthenticationError
from syncd.http import RemoteSystem, RetryPolicy


@pytest.fixture
def cfg_path(tmp_path):
    cfg = base()
    cfg["daemon"]["state_url"] = f"sqlite:///{tmp_path}/state.db"
    return write(tmp_path, cfg)


@pytest.fixture
def engine(monkeypatch):
    """Fake engine entry points (the engine is another part; these are its seams)."""
    calls: dict[str, list] = {}

    def fake(name, result):
        def fn(*args, **kwargs):
            calls.setdefault(name, []).append((args, kwargs))
            return result(*args, **kwargs) if callable(result) else result
        monkeypatch.setattr(syncd.engine, name, fn, raising=False)

    monkeypatch.setattr(syncd.store, "open_store",
                        lambda url, **kw: types.SimpleNamespace(url=url, close=lambda: None), raising=False)
    monkeypatch.setattr(syncd.store, "check_schema", lambda url, **kw: None, raising=False)
    return types.SimpleNamespace(fake=fake, calls=calls)


def test_config_option_goes_before_or_after_the_command():
    parser = build_parser()
    assert parser.parse_args(["status"]).config == "/etc/syncd/config.toml"
    assert parser.parse_args(["-c", "a.toml", "status"]).config == "a.toml"
    assert parser.parse_args(["status", "--config", "b.toml"]).config == "b.toml"
    assert parser.parse_args(["dead-letters", "retry", "3", "4"]).ids == ["3", "4"]


def test_parsing_run_loads_no_other_commands_modules():
    """An idle daemon does not carry the demo, the sandbox (starlette, uvicorn), the reports or
    the probe in memory: a command's own options are declared when that command is parsed."""
    import subprocess
    import sys

    code = ("import sys; from syncd.cli import build_parser; p = build_parser(); "
            "p.parse_args(['run', '-c', 'x.toml']); "
            "print(sorted(m for m in sys.modules if m.startswith(('syncd.demo', 'syncd.okitoki.sandbox', "
            "'syncd.reports', 'syncd.cli_probe', 'starlette', 'uvicorn'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    parser = build_parser()
    assert parser.parse_args(["journal", "--format", "csv"]).format == "csv"
    assert parser.parse_args(["demo", "--json"]).json is True
    assert parser.parse_args(["sandbox", "--port", "0"]).port == 0


def test_unknown_command_is_a_usage_error():
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_check_prints_a_summary_and_no_secret(cfg_path, capsys):
    assert main(["check", "-c", str(cfg_path)]) == 0
    out = capsys.readouterr()
    assert "configuration is valid" in out.out and "new-leads, reactivation" in out.out
    assert TOKEN not in out.out + out.err


class _Refuser(BaseHTTPRequestHandler):
    status = 403

    def do_GET(self):  # noqa: N802
        body = json.dumps({"result": "error", "message": "no right"}).encode()
        self.send_response(self.status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.fixture
def refusing_server():
    class H403(_Refuser):
        status = 403

    class H401(_Refuser):
        status = 401

    servers = [ThreadingHTTPServer(("127.0.0.1", 0), h) for h in (H403, H401)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    yield [f"http://127.0.0.1:{s.server_address[1]}" for s in servers]
    for s in servers:
        s.shutdown()
        s.server_close()


def test_check_online_explains_403_and_401_in_plain_words(tmp_path, capsys, engine, refusing_server):
    okitoki_url, crm_url = refusing_server
    cfg = base()
    cfg["okitoki"]["url"] = okitoki_url
    path = write(tmp_path, cfg)
    from syncd.okitoki.client import OkitokiClient

    class Crm(FakeConnector):
        def health_check(self):
            with RemoteSystem(system="fake", base_url=crm_url, retry=RetryPolicy(attempts=1)) as remote:
                remote.request("GET", "/api/me", operation="health_check")

    def build_syncer(config, **kw):
        return types.SimpleNamespace(okitoki=OkitokiClient.from_config(config.okitoki, retry=RetryPolicy(attempts=1)),
                                     crm=Crm(), close=lambda: None)

    engine.fake("build_syncer", build_syncer)
    assert main(["check", "--online", "-c", str(path)]) == 1
    err = capsys.readouterr().err
    assert "Oki-Toki: FAILED: Oki-Toki accepted the token but its user lacks a right" in err
    assert "HTTP 403" in err and "call log" in err
    assert "CRM (fake): FAILED: the CRM (fake) refused the credentials" in err and "HTTP 401" in err
    assert TOKEN not in err


def test_check_online_ok(cfg_path, capsys, engine):
    side = types.SimpleNamespace(health_check=lambda: None)
    engine.fake("build_syncer", types.SimpleNamespace(okitoki=side, crm=side, close=lambda: None))
    assert main(["check", "--online", "-c", str(cfg_path)]) == 0
    assert "Oki-Toki: OK" in capsys.readouterr().out


def test_migrate_then_run_refuses_an_unmigrated_database(tmp_path, capsys):
    cfg = base()
    cfg["daemon"]["state_url"] = f"sqlite:///{tmp_path}/old.db"
    path = write(tmp_path, cfg)
    assert main(["run", "-c", str(path)]) == 78
    err = capsys.readouterr().err
    assert "daemon.state_url:" in err and "syncd migrate" in err
    assert main(["migrate", "-c", str(path)]) == 0
    assert "schema revision" in capsys.readouterr().out


def test_once_runs_one_cycle_and_prints_json(cfg_path, capsys, engine):
    class Syncer:
        closed = False
        store = None

        def _r(self, job):
            return types.SimpleNamespace(job=job, counts={"created": 1}, errors=[])

        def cycle(self, dry_run):
            runs = [self._r(j) for j in ("pull:crm:contacts", "pull:okitoki:contacts",
                                         "pull:okitoki:calls", "push")]
            return types.SimpleNamespace(runs=runs, changes=[], dry_run=dry_run)

        def close(self): Syncer.closed = True

    engine.fake("build_syncer", lambda config, **kw: Syncer())
    assert main(["once", "--dry-run", "--json", "-c", str(cfg_path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dry_run"] is True
    assert [r["job"] for r in data["reports"]] == ["pull:crm:contacts", "pull:okitoki:contacts",
                                                   "pull:okitoki:calls", "push"]
    assert engine.calls["build_syncer"][0][1] == {"dry_run": True} and Syncer.closed


def test_once_reports_a_refused_remote_and_exits_1(cfg_path, capsys, engine):
    class Syncer:
        store = None

        def cycle(self, dry_run):
            raise AuthenticationError("refused", system="okitoki", operation="export_contacts", status=401)
        def close(self): pass

    engine.fake("build_syncer", lambda config, **kw: Syncer())
    assert main(["once", "-c", str(cfg_path)]) == 1
    assert "Oki-Toki refused the API token for export_contacts (HTTP 401)" in capsys.readouterr().err


def test_status_output_never_shows_a_secret(cfg_path, capsys, engine):
    report = {"cursors": {"crm:contacts": "2026-01-01T00:00:00Z"},
              "last_error": f"GET /dialers/stat?api_token={TOKEN} → 500",
              "outbox": {"dnc": {"pending": 0}, "contacts": {"pending": 4}}}
    engine.fake("status_report", report)
    assert main(["status", "--json", "-c", str(cfg_path)]) == 0
    out = capsys.readouterr().out
    assert json.loads(out)["outbox"]["contacts"]["pending"] == 4 and TOKEN not in out
    assert main(["status", "-c", str(cfg_path)]) == 0
    out = capsys.readouterr().out
    assert "contacts:" in out and "pending: 4" in out and TOKEN not in out


def test_conflicts_and_dead_letters(cfg_path, capsys, engine):
    engine.fake("list_conflicts", [])
    assert main(["conflicts", "-c", str(cfg_path)]) == 0
    assert "no conflicts" in capsys.readouterr().out
    engine.fake("list_dead_letters", [{"id": 3, "reason": "invalid phone", "lane": "contacts"}])
    assert main(["dead-letters", "list", "--json", "-c", str(cfg_path)]) == 0
    assert json.loads(capsys.readouterr().out)[0]["reason"] == "invalid phone"
    engine.fake("retry_dead_letters", lambda store, ids: len(ids))
    assert main(["dead-letters", "retry", "3", "4", "-c", str(cfg_path)]) == 0
    assert "2 dead letters queued again" in capsys.readouterr().out
    engine.fake("drop_dead_letters", lambda store, ids: 7)
    assert main(["dead-letters", "drop", "--all", "-c", str(cfg_path)]) == 0
    assert engine.calls["drop_dead_letters"][0][0][1] is None
    assert main(["dead-letters", "drop", "-c", str(cfg_path)]) == 2


def test_resync(cfg_path, capsys, engine):
    engine.fake("resync", None)
    assert main(["resync", "-c", str(cfg_path)]) == 0
    assert "cursors reset" in capsys.readouterr().out


def test_demo_is_loaded_lazily_and_its_exit_code_passes_through(monkeypatch):
    seen = []
    module = types.ModuleType("syncd.demo")
    module.main = lambda args: seen.append(args.json) or 3
    monkeypatch.setitem(__import__("sys").modules, "syncd.demo", module)
    assert main(["demo", "--json"]) == 3 and seen == [True]


def test_an_unexpected_error_is_one_redacted_line(cfg_path, capsys, engine):
    def broken(store, **kw):
        raise RuntimeError(f"database password {TOKEN} rejected")

    engine.fake("status_report", broken)
    assert main(["status", "-c", str(cfg_path)]) == 1
    err = capsys.readouterr().err
    assert err.strip() == "syncd status: RuntimeError: database password *** rejected"


def test_once_dry_run_prints_what_it_would_do_and_why(cfg_path, capsys, engine):
    from syncd.model import Change

    class Syncer:
        store = None

        def cycle(self, dry_run=False):
            run = types.SimpleNamespace(job="push", counts={"planned": 1}, errors=[])
            change = Change(target="okitoki", operation="add_task", record_id=None,
                            fields={"dialer_id": 101}, reason="status new matches new-leads")
            return types.SimpleNamespace(runs=[run], changes=[change], dry_run=dry_run)

        def close(self):
            pass

    engine.fake("build_syncer", lambda config, **kw: Syncer())
    assert main(["once", "--dry-run", "-c", str(cfg_path)]) == 0
    out = capsys.readouterr().out
    assert "push: planned=1" in out and "dry run: 1 change(s) would be made" in out
    assert "okitoki: add_task (new): dialer_id=101  (status new matches new-leads)" in out


def test_status_dead_letters_and_resync_on_a_real_migrated_store(tmp_path, capsys):
    cfg = base()
    cfg["daemon"]["state_url"] = f"sqlite:///{tmp_path}/real.db"
    path = write(tmp_path, cfg)
    assert main(["migrate", "-c", str(path)]) == 0
    capsys.readouterr()
    assert main(["status", "--json", "-c", str(path)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["dead_letters"] == 0 and data["api_today"]["okitoki"]["budget"] == 20000
    assert "cursors" in data and "outbox" in data
    assert main(["dead-letters", "list", "-c", str(path)]) == 0
    assert "no dead letters" in capsys.readouterr().out
    assert main(["conflicts", "-c", str(path)]) == 0
    assert "no conflicts" in capsys.readouterr().out
    assert main(["resync", "--stream", "crm:contacts", "-c", str(path)]) == 0
    assert "cursors_reset: 0" in capsys.readouterr().out


def test_run_wires_the_daemon_and_sigterm_stops_it_with_0(cfg_path, capsys, engine):
    import os
    import signal

    from fakesyncer import FakeSyncer

    ran = []

    class Syncer(FakeSyncer):   # the daemon's whole seam; these jobs are what the test watches
        def _r(self, job):
            ran.append(job)
            return types.SimpleNamespace(job=job, counts={}, errors=[], deferred="")

        def pull_crm_contacts(self): return self._r("pull:crm:contacts")
        def pull_okitoki_contacts(self): return self._r("pull:okitoki:contacts")
        def pull_okitoki_calls(self): return self._r("pull:okitoki:calls")
        def push(self, stop): return self._r("push")
        def housekeeping(self): return self._r("housekeeping")
        def close(self): ran.append("closed")

    engine.fake("build_syncer", lambda config, **kw: Syncer())
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()
    try:
        assert main(["run", "-c", str(cfg_path)]) == 0
    finally:
        timer.cancel()
    assert "push" in ran and ran[-1] == "closed"
    assert gc.get_freeze_count() > 0    # the start-up heap was settled (syncd.heap)


def test_check_online_reports_what_the_connected_crm_cannot_do(cfg_path, capsys, engine):
    from syncd.connector import Capabilities

    ok = types.SimpleNamespace(health_check=lambda: None)
    crm = types.SimpleNamespace(health_check=lambda: None,
                                capabilities=Capabilities(calls_write=False, do_not_call=False))
    engine.fake("build_syncer", types.SimpleNamespace(okitoki=ok, crm=crm, close=lambda: None))
    assert main(["check", "--online", "-c", str(cfg_path)]) == 78
    err = capsys.readouterr().err
    assert f'{cfg_path}: calls.to_crm: the "fake" connector cannot write calls' in err
    assert f"{cfg_path}: do_not_call.crm_field: " in err
