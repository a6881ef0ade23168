"""The flows with the real SQL connector (a CRM in a SQLite file) and the real sandbox: the
daemon's own wiring (``build_syncer`` loads the connector by entry point and validates its
options), on a SQLite and on a PostgreSQL state database."""

from __future__ import annotations

import pytest

from syncd.demo_data import DemoContact
from syncd.engine.build import build_syncer
from syncd.errors import ConfigError
from syncd.store import open_store
from syncd.testing.scenario import SqlCrm

from .conftest import make_config
from .test_flows import _writes


@pytest.fixture
def sql_world(state_url, sandbox, tmp_path):
    crm = SqlCrm(f"sqlite:///{tmp_path / 'crm.db'}").create()
    open_store(state_url, create=True).close()
    config = make_config(state_url, sandbox.url, sandbox.token,
                         crm={"connector": "sql", "options": {
                             "url": crm.url, "phone_columns": ["phone", "phone2"],
                             "create_calls_table": True}})
    syncer = build_syncer(config, state_dir=tmp_path / "state", instance_id="sql")
    yield syncer, sandbox, crm
    syncer.close()
    crm.dispose()


def test_sql_crm_every_flow_once_and_then_quiet(sql_world):
    syncer, sb, crm = sql_world
    crm.insert([DemoContact("Oksana Lysenko", "+380 67 100 20 30", "050-100-20-31", "ok@x.ua", "UA", "new"),
                DemoContact("Jan Kowalski", "48 601 234 567", None, None, "PL", "callback"),
                DemoContact("Ana Pérez", "+52 1 55 1234 5678", None, "ana@x.mx", "MX", "won"),
                DemoContact("No Phone", "12", None, None, "UA", "new")])
    first = syncer.cycle()
    assert not first.errors, first.errors
    state = sb.state()
    names = {c["name"] for c in state["contacts"]}
    assert {"Oksana Lysenko", "Jan Kowalski", "Ana Pérez"} <= names and "No Phone" not in names
    tasks = [t for t in state["tasks"] if t["dialer_id"] == 101]
    assert len(tasks) == 2
    # a call, its outcome as a status moving forward, do-not-call, then nothing more to do
    sb.add_call(phone="380671002030", direction="in", outcome="answered")
    oksana = next(r for r in crm.all() if r["name"] == "Oksana Lysenko")
    jan = next(r for r in crm.all() if r["name"] == "Jan Kowalski")
    crm.update(jan["id"], do_not_call=True)
    for _ in range(3):
        assert not syncer.cycle().errors
    assert [c["session_id"] for c in crm.calls()] and len(crm.calls()) == 1
    assert crm.get(oksana["id"])["status"] == "contacted"
    blacklist = next(l for l in sb.state()["lists"] if l["id"] == 7)["values"]
    assert any("48601234567" in v for v in blacklist)
    assert all(t["dialer_id"] != 101 or "48601234567" not in "".join(t["phones"])
               for t in sb.state()["tasks"] if t["status"] == "pending")
    writes = _writes(sb)
    snapshot = crm.all()
    for _ in range(2):
        assert not syncer.cycle().errors
    assert _writes(sb) == writes and crm.all() == snapshot


def test_sql_connector_options_are_checked_at_build(state_url, sandbox, tmp_path):
    open_store(state_url, create=True).close()
    config = make_config(state_url, sandbox.url, sandbox.token,
                         crm={"connector": "sql", "options": {"url": "sqlite:///x.db", "colour": 1}})
    with pytest.raises(ConfigError, match="crm.options.colour"):
        build_syncer(config, state_dir=tmp_path / "s")
