"""`syncd merge-candidates`: a CRM contact whose number another CRM contact already holds is
held (a likely duplicate); the operator links it to the contact it really is (the pair then
syncs) or dismisses the doubt (a person of its own)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from syncd.engine.build import build_syncer
from syncd.engine.candidates import CandidateNotFound, dismiss_candidate, link_candidate, list_candidates
from syncd.store import open_store
from syncd.store.tables import Link

from .conftest import make_config
from .fake_crm import FakeCrm

LINK = Link.__table__


@pytest.fixture
def duplicate(state_url, sandbox, tmp_path):
    open_store(state_url, create=True).close()
    base = make_config(state_url, sandbox.url, sandbox.token)
    contacts = {**base.model_dump()["contacts"], "create_in_okitoki": False, "create_in_crm": False}
    config = make_config(state_url, sandbox.url, sandbox.token, contacts=contacts)
    crm = FakeCrm()
    syncer = build_syncer(config, crm=crm, state_dir=tmp_path / "crm", instance_id="mc")
    x = crm.add(("0671237777",), name="Taras (work)", status="won")
    y = crm.add(("0671237777",), name="Taras Koval", status="won")
    sandbox.seed(contacts=[{"name": "Taras Koval", "phones": ["+380671238888"]}])
    syncer.cycle()
    yield syncer, sandbox, crm, x, y
    syncer.close()


def _link(syncer, **where):
    with syncer.store.begin() as conn:
        (col, value), = where.items()
        return conn.execute(select(LINK).where(LINK.c[col] == value)).one()


def test_a_held_duplicate_linked_to_the_contact_it_really_is_syncs_with_it(duplicate):
    syncer, sb, crm, x, y = duplicate
    [cand] = list_candidates(syncer.store)
    assert (cand["side"], cand["record_id"]) == ("crm", y)
    assert cand["candidates"] == [{"record": f"crm:{x}"}]
    oki = next(c for c in sb.state()["contacts"] if c["name"] == "Taras Koval")
    target = _link(syncer, okitoki_id=str(oki["id"]))
    assert target.crm_id is None
    with pytest.raises(ValueError, match="already has a crm record"):
        link_candidate(syncer.store, cand["id"], _link(syncer, crm_id=x).id, now=syncer.ctx.now())
    link_candidate(syncer.store, cand["id"], target.id, now=syncer.ctx.now())
    for _ in range(2):
        assert not syncer.cycle().errors
    joined = _link(syncer, crm_id=y)
    assert joined.id == target.id and joined.okitoki_id == str(oki["id"]) and joined.hold is None
    assert list_candidates(syncer.store) == []
    with pytest.raises(CandidateNotFound):
        dismiss_candidate(syncer.store, cand["id"], now=syncer.ctx.now())


def test_a_dismissed_candidate_is_a_contact_of_its_own(duplicate):
    syncer, _, _, x, y = duplicate
    [cand] = list_candidates(syncer.store)
    done = dismiss_candidate(syncer.store, cand["id"], now=syncer.ctx.now())
    held = _link(syncer, crm_id=y)
    assert held.id == done["link"] and held.hold is None
    assert list_candidates(syncer.store) == []
    syncer.cycle()
    assert list_candidates(syncer.store) == [], "held again after the dismissal"
