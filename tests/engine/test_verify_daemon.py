"""The daemon runs verify on its own schedule with repair on: drift made by hand behind the
cursor's back is found, reported on /metrics, healed through the outbox, and the next verify
is clean. The real daemon, engine, SQL connector and sandbox, on loopback HTTP."""

from __future__ import annotations

import threading
import time
from datetime import datetime

import httpx
import pytest
from sqlalchemy import select

from syncd.daemon import Daemon
from syncd.demo_data import DemoContact
from syncd.engine.build import build_syncer
from syncd.engine.drift import last_report
from syncd.notify import Notifier
from syncd.store import open_store
from syncd.store.tables import VerifyReport
from syncd.testing.scenario import SqlCrm

from .conftest import make_config

REPORT = VerifyReport.__table__


def _wait(predicate, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def _drift(text: str, kind: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(f'syncd_drift_records{{kind="{kind}"}}'):
            return float(line.split()[-1])
    return None


def _reports_with(store, kind: str) -> list:
    with store.begin() as conn:
        rows = conn.execute(select(REPORT).order_by(REPORT.c.id)).all()
    return [r for r in rows if (r.counts or {}).get(kind)]


@pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
def test_the_daemon_verifies_and_heals_drift_on_its_schedule(state_url, sandbox, tmp_path):
    crm = SqlCrm(f"sqlite:///{tmp_path / 'crm.db'}").create()
    crm.insert([DemoContact("Oksana Lysenko", "+380 67 100 20 30", None, None, "UA", "won")])
    open_store(state_url, create=True).close()
    config = make_config(state_url, sandbox.url, sandbox.token,
                         crm={"connector": "sql", "poll_interval": "200ms",
                              "options": {"url": crm.url, "phone_columns": ["phone", "phone2"]}},
                         daemon__http_listen="127.0.0.1:0", daemon__push_interval="100ms",
                         daemon__jitter="0s", okitoki__poll_interval="200ms",
                         verify={"interval": "1s", "calls_days": 1})
    syncer = build_syncer(config, state_dir=tmp_path / "state", instance_id="daemon-verify")
    daemon = Daemon(syncer, config, notifier=Notifier(None), tick=0.05)
    thread = threading.Thread(target=daemon.run, daemon=True)
    try:
        thread.start()
        _wait(lambda: daemon.web is not None and daemon.web.server.started)
        client = httpx.Client(base_url=f"http://127.0.0.1:{daemon.web.port}", timeout=5)
        _wait(lambda: any(c["name"] == "Oksana Lysenko" for c in sandbox.state()["contacts"]))
        # drift behind the CRM cursor's back: a row the pulls will never see
        with crm.engine.begin() as conn:
            conn.execute(crm.contacts.insert().values(name="Old Row", phone="+380 67 777 88 99",
                                                      status="won", do_not_call=False,
                                                      updated_at=datetime(2001, 1, 1)))
        _wait(lambda: _reports_with(syncer.store, "crm_unlinked"))
        found = _reports_with(syncer.store, "crm_unlinked")[0]
        assert found.repaired and found.samples["crm_unlinked"][0].startswith("crm:")
        _wait(lambda: any(c["name"] == "Old Row" for c in sandbox.state()["contacts"]))
        _wait(lambda: last_report(syncer.store)["started_at"] > found.finished_at
              and last_report(syncer.store)["drift"] == 0)
        _wait(lambda: _drift(client.get("/metrics").text, "crm_unlinked") == 0.0)
        assert _drift(client.get("/metrics").text, "gone_crm") == 0.0
        _wait(lambda: client.get("/healthz").status_code == 200)
        client.close()
    finally:
        daemon.stop()
        thread.join(15)
        crm.dispose()

