"""The call-log walk with the real SQL connector (a CRM in a SQLite file) and the real sandbox:
long calls arrive once, later changes rewrite the calls row, a restart loses nothing."""

from __future__ import annotations

import pytest

from syncd.demo_data import DemoContact
from syncd.engine.build import build_syncer
from syncd.store import open_store
from syncd.testing.scenario import SqlCrm

from .conftest import make_config
from .test_call_walk import CALLS, SharedClock, _call, _until_swept


@pytest.fixture
def sql_walk(state_url, sandbox, tmp_path):
    crm = SqlCrm(f"sqlite:///{tmp_path / 'crm.db'}").create()
    open_store(state_url, create=True).close()
    clock = SharedClock(sandbox)
    config = make_config(state_url, sandbox.url, sandbox.token, calls=CALLS,
                         crm={"connector": "sql", "options": {
                             "url": crm.url, "phone_columns": ["phone", "phone2"],
                             "create_calls_table": True}})
    made = []

    def start():
        made.append(build_syncer(config, state_dir=tmp_path / "state", instance_id="sql", clock=clock))
        return made[-1]

    yield start, sandbox, crm, clock
    for s in made:
        s.close()
    crm.dispose()


def test_sql_crm_gets_every_call_once_and_each_later_change(sql_walk):
    start, sb, crm, clock = sql_walk
    syncer = start()
    crm.insert([DemoContact("Long Caller", "+380 67 555 00 11", None, None, "UA", "new")])
    assert not syncer.cycle().errors
    ids = [_call(sb, "380675550011", s, record_url=None) for s in (30, 40 * 60, 3 * 3600)]
    clock.advance(30)
    syncer.pull_okitoki_calls()                 # read the short call, then the process stops
    syncer.close()
    sb.update_call(int(ids[1]), record_url="https://rec.example/long.mp3")
    clock.advance(10 * 60)
    syncer = start()
    _until_swept(syncer, clock)
    rows = {r["session_id"]: r for r in crm.calls()}
    assert sorted(rows) == sorted(ids) and len(crm.calls()) == 3
    assert rows[ids[1]]["recording_url"] == "https://rec.example/long.mp3"
    sb.update_call(int(ids[2]), record_url="https://rec.example/3h.mp3")
    clock.advance(5 * 60)
    _until_swept(syncer, clock)
    sb.update_call(int(ids[2]), result="busy", ctime=0)
    _until_swept(syncer, clock)
    rows = {r["session_id"]: r for r in crm.calls()}
    assert len(crm.calls()) == 3
    assert rows[ids[2]]["recording_url"] == "https://rec.example/3h.mp3"
    assert rows[ids[2]]["outcome"] == "busy" and rows[ids[2]]["talk_s"] == 0
    assert rows[ids[0]]["recording_url"] is None
