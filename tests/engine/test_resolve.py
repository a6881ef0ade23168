"""`syncd conflicts resolve`: a held (manual) conflict is settled by the operator and both
sides end with the chosen value; nothing echoes, nothing is held any more."""

from __future__ import annotations

import pytest

from syncd.engine.build import build_syncer
from syncd.engine.context import Context
from syncd.engine.resolve import ConflictNotFound, resolve_conflict
from syncd.engine.status import list_conflicts
from syncd.store import open_store

from .conftest import make_config
from .fake_crm import FakeCrm


@pytest.fixture
def manual_world(state_url, sandbox, tmp_path):
    open_store(state_url, create=True).close()
    config = make_config(state_url, sandbox.url, sandbox.token)
    fields = {**config.model_dump()["contacts"]["fields"]}
    fields["name"] = {**fields["name"], "conflict": "manual"}
    config = make_config(state_url, sandbox.url, sandbox.token,
                         contacts={**config.model_dump()["contacts"], "fields": fields})
    crm = FakeCrm()
    syncer = build_syncer(config, crm=crm, state_dir=tmp_path / "crm", instance_id="t")
    yield syncer, sandbox, crm
    syncer.close()


def _okitoki_writes(sb):
    from tests.daemon_checks import okitoki_writes
    return okitoki_writes(sb)


def _oki(sb, cid_name):
    return next(c for c in sb.state()["contacts"] if c["id"] == cid_name)


@pytest.mark.parametrize("take", [("okitoki", None), ("value", '"Olena K."')])
def test_a_held_conflict_resolved_reaches_both_sides_once(manual_world, take):
    syncer, sb, crm = manual_world
    cid = crm.add(("0671112233",), name="Olena", status="won")
    syncer.cycle()
    oki_id = next(c["id"] for c in sb.state()["contacts"] if c["name"] == "Olena")
    crm.edit(cid, name="Olena Kovalenko")
    sb.edit_contact(oki_id, name="Olena Koval")
    syncer.cycle()
    [conflict] = [c for c in list_conflicts(syncer.store) if not c["resolved"]]
    assert conflict["winner"] == "held" and conflict["field"] == "name"
    assert crm.rows[cid].fields["name"] == "Olena Kovalenko" and _oki(sb, oki_id)["name"] == "Olena Koval"

    ctx = Context(config=syncer.ctx.config, store=syncer.store, crm=None, okitoki=None)
    done = resolve_conflict(ctx, conflict["id"], *take)
    want = "Olena Koval" if take[0] == "okitoki" else "Olena K."
    assert done["value"] == want
    assert done["writes"] == (["crm"] if take[0] == "okitoki" else ["crm", "okitoki"])
    for _ in range(3):
        assert not syncer.cycle().errors
    assert crm.rows[cid].fields["name"] == want and _oki(sb, oki_id)["name"] == want
    assert all(c["resolved"] for c in list_conflicts(syncer.store))
    writes, oki_writes = crm.writes, _okitoki_writes(sb)
    syncer.cycle()
    assert crm.writes == writes and _okitoki_writes(sb) == oki_writes, "a quiet cycle wrote"


def test_resolving_an_unknown_or_badly_asked_conflict(manual_world):
    syncer, _, _ = manual_world
    ctx = Context(config=syncer.ctx.config, store=syncer.store, crm=None, okitoki=None)
    with pytest.raises(ConflictNotFound):
        resolve_conflict(ctx, 999, "crm")
    with pytest.raises(ValueError, match="--take must be"):
        resolve_conflict(ctx, 1, "both")
