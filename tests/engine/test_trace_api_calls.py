"""`syncd trace` lists the API requests made for a contact, and the journal names the records
each request was for (never a phone number or a secret)."""

from __future__ import annotations

import io
import json

import httpx
from sqlalchemy import select

from syncd.engine.build import build_syncer
from syncd.engine.trace import render_trace, trace
from syncd.http import RemoteSystem
from syncd.model import Call, ContactWrite, WriteResult
from syncd.reports.formats import write_csv
from syncd.reports.query import Filters, journal
from syncd.store import open_store
from syncd.store.tables import ApiCall

from .conftest import make_config
from .fake_crm import FakeCrm

class HttpCrm(FakeCrm):
    """The fake CRM, each write also sent as one request through the shared HTTP layer (to a
    mock transport), so the CRM's requests reach the API journal as a real connector's do."""

    remote: RemoteSystem | None = None

    def _send(self, operation: str) -> None:
        if self.remote is not None:
            self.remote.request("POST", f"/{operation}", operation=operation, json={})

    def upsert_contacts(self, writes: list[ContactWrite]) -> list[WriteResult]:
        self._send("upsert_contacts")
        return super().upsert_contacts(writes)

    def log_calls(self, calls: list[Call]) -> list[WriteResult]:
        self._send("log_calls")
        return super().log_calls(calls)


def test_trace_shows_a_contacts_task_create_call_log_and_contact_update_requests_in_time_order(
        state_url, sandbox, tmp_path):
    open_store(state_url, create=True).close()
    crm = HttpCrm()
    config = make_config(state_url, sandbox.url, sandbox.token)
    syncer = build_syncer(config, crm=crm, state_dir=tmp_path / "crm", instance_id="test")
    try:
        crm.remote = RemoteSystem(system="crm", base_url="http://crm.test", journal=syncer.api_journal,
                                  transport=httpx.MockTransport(lambda req: httpx.Response(200, json={})))
        other = crm.add(("0671239999",), name="Other", status="new", do_not_call=False)
        cid = crm.add(("0671230000",), name="Caller", status="new", do_not_call=False)
        syncer.cycle()
        session = str(sandbox.add_call(phone="380671230000", direction="in", outcome="answered")["session_id"])
        syncer.cycle()
        syncer.cycle()     # the call is logged and its status written to the CRM

        def api_ops() -> list[tuple[str, str]]:
            syncer.api_journal.flush()
            [story] = trace(syncer.store, syncer.ctx.config, f"crm:{cid}")["contacts"]
            return [(e["system"], e["operation"]) for e in story["events"] if e["kind"] == "api"]
        before = api_ops()
        crm.edit(cid, name="Caller Renamed")
        syncer.cycle()     # the rename reaches Oki-Toki
        ops = api_ops()
        assert ops[:len(before)] == before and ("okitoki", "upsert_contact") in ops[len(before):], ops
        report = trace(syncer.store, syncer.ctx.config, f"crm:{cid}")
        [story] = report["contacts"]
        task = [i for i, (s, o) in enumerate(ops) if s == "okitoki" and "task" in o]
        logged = [i for i, op in enumerate(ops) if op == ("crm", "log_calls")]
        contact = [i for i, (s, o) in enumerate(ops) if s == "okitoki" and "contact" in o]
        assert task and logged and contact, ops   # its task create, call log write, contact writes
        assert ("crm", "upsert_contacts") in ops, ops                # the status the call set
        assert task[0] < logged[0] < contact[-1], ops                # in time order: the rename last
        times = [e["at"] for e in story["events"]]
        assert times == sorted(times)
        other_story = trace(syncer.store, syncer.ctx.config, f"crm:{other}")["contacts"][0]
        assert ("crm", "log_calls") not in [(e["system"], e["operation"])
                                             for e in other_story["events"] if e["kind"] == "api"]
        text = render_trace(report)
        assert " api " in text and "log_calls" in text

        # the journal export names each request's records; no phone number or token anywhere
        out = io.StringIO()
        write_csv(journal(syncer.store, Filters()), out)
        csv_text = out.getvalue()
        assert "records" in csv_text.splitlines()[0]
        assert f"crm:{cid}" in csv_text and f"session:{session}" in csv_text
        with syncer.store.begin() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(ApiCall.__table__))]
        dump = json.dumps(rows, default=str) + csv_text
        assert any(r["records"] for r in rows)
        for secret in ("671230000", "671239999", sandbox.token):
            assert secret not in dump, secret
    finally:
        if crm.remote is not None:
            crm.remote.close()
        syncer.close()
