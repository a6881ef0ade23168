"""Property: random edits on both sides, interleaved with cycles, always converge; the engine
never writes more than the real changes, and no value flips back and forth (invariants 3, 4)."""

from __future__ import annotations

import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from syncd.engine.build import build_syncer
from syncd.engine.mapping import is_empty
from syncd.store import open_store

from .conftest import make_config
from .fake_crm import FakeCrm
from .test_flows import _writes

N = 3
FIELDS = ("name", "email")
VALUES = {"name": st.sampled_from(["Ann", "Bob", "Cid", ""]),
          "email": st.sampled_from(["a@x.io", "b@x.io", ""])}

edit = st.one_of(
    st.tuples(st.just("crm"), st.integers(0, N - 1), st.just("name"), VALUES["name"]),
    st.tuples(st.just("crm"), st.integers(0, N - 1), st.just("email"), VALUES["email"]),
    st.tuples(st.just("okitoki"), st.integers(0, N - 1), st.just("name"), VALUES["name"]),
    st.tuples(st.just("okitoki"), st.integers(0, N - 1), st.just("email"), VALUES["email"]),
    st.just(("cycle",)),
)


def _snapshot(sb, crm, pairs):
    oki = {c["id"]: c for c in sb.state()["contacts"]}
    snap = {}
    for cid, oid in pairs:
        for f in FIELDS:
            snap[("crm", cid, f)] = crm.rows[cid].fields.get(f) or ""
            snap[("okitoki", cid, f)] = oki[int(oid)].get(f) or ""
    return snap


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(edit, min_size=1, max_size=12))
def test_random_edits_converge_without_echo_or_flip_flop(sandbox, steps):
    sandbox.reset()
    url = f"sqlite:///{tempfile.mkdtemp()}/state.db"
    open_store(url, create=True).close()
    crm = FakeCrm()
    config = make_config(url, sandbox.url, sandbox.token, contacts__create_in_crm=False)
    syncer = build_syncer(config, crm=crm, state_dir=tempfile.mkdtemp(), instance_id="prop")
    try:
        ids = [crm.add((f"06755500{i:02d}",), name=f"P{i}", email=f"p{i}@x.io", status="won")
               for i in range(N)]
        syncer.cycle()
        syncer.cycle()
        with syncer.store.begin() as conn:
            from sqlalchemy import select
            from syncd.store.tables import Link
            L = Link.__table__
            pairs = [(r.crm_id, r.okitoki_id) for r in conn.execute(select(L).where(L.c.crm_id.in_(ids)))]
        assert len(pairs) == N and all(o for _, o in pairs)
        oid = dict(pairs)
        base_writes = _writes(sandbox) + crm.writes
        edits = 0
        for step in steps:
            if step[0] == "cycle":
                assert not syncer.cycle().errors
                continue
            side, i, field, value = step
            edits += 1
            if side == "crm":
                crm.edit(ids[i], **{field: value})
            else:
                sandbox.edit_contact(int(oid[ids[i]]), **{field: value})
        history = []
        for _ in range(4):
            assert not syncer.cycle().errors
            history.append(_snapshot(sandbox, crm, pairs))
        final = history[-1]
        # convergence: both sides agree, up to "an empty value never erases a non-empty one"
        for cid, _ in pairs:
            for f in FIELDS:
                a, b = final[("crm", cid, f)], final[("okitoki", cid, f)]
                assert a == b or is_empty(a) or is_empty(b), (cid, f, a, b)
        # quiet: the last cycles wrote nothing, and nothing flipped back and forth
        assert history[-1] == history[-2]
        for key in final:
            seq = [h[key] for h in history]
            distinct = [v for j, v in enumerate(seq) if j == 0 or v != seq[j - 1]]
            assert len(distinct) == len(set(distinct)), (key, seq)
        # no echo: at most one write per real change
        assert _writes(sandbox) + crm.writes - base_writes <= edits
    finally:
        syncer.close()
