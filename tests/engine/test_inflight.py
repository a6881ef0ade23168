"""Several requests in flight per remote system (issue 9, part 1), against the real sandbox
over loopback with its latency fault: the rate limit is used whatever the latency, each
record's operations keep their order, a Retry-After pauses every worker, nothing is doubled."""

from __future__ import annotations

import random
import threading
import time
from types import SimpleNamespace

import pytest

from syncd.engine.build import build_syncer
from syncd.engine.inflight import SPLITS, partition
from syncd.store import open_store

from .conftest import cycle_in_threads, make_config
from .fake_crm import FakeCrm

LATENCY = 0.3
RPM = 1200           # 20 requests a second
BURST = 5            # the limiter's burst: the first requests of a push go out at once


def _syncer(state_url, sb, crm, tmp_path, *, in_flight=8, rpm=RPM, name="a"):
    open_store(state_url, create=True).close()
    config = make_config(state_url, sb.url, sb.token, okitoki__requests_per_minute=rpm,
                         okitoki__max_in_flight=in_flight)
    return build_syncer(config, crm=crm, state_dir=tmp_path / f"crm-{name}", instance_id=name)


def _arrivals(sb, path_part: str) -> list[dict]:
    return [r for r in sb.requests(limit=2000)["recent"] if path_part in r["path"]]


def _sustained_ratio(stamps: list[float], per_minute: int) -> float:
    """Requests a second after the initial burst, as a share of the limit."""
    stamps = sorted(stamps)[BURST:]
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) / (per_minute / 60)


def _far_away(sb):
    """The sandbox at LATENCY with a limit of RPM, its request log cleared."""
    sb.set_rate_limit(RPM)
    sb.set_faults([{"kind": "latency", "seconds": LATENCY, "rate": 1.0}])
    sb.clear_requests()


def _creates(sb, crm, tmp_path, state_url, n, *, in_flight, prefix):
    for i in range(n):
        crm.add((f"0675{prefix}{i:04d}",), name=f"Fast {prefix}{i}", status="won")
    syncer = _syncer(state_url, sb, crm, tmp_path, in_flight=in_flight)
    try:
        syncer.pull_crm_contacts()
        _far_away(sb)
        report = syncer.push()
    finally:
        syncer.close()
    return report


def _phones_once(sb, prefix: str) -> list[str]:
    phones = [p for c in sb.state()["contacts"] for p in c["phones"] if f"675{prefix}" in p]
    assert len(phones) == len(set(phones)), "a contact was created twice"
    return phones


@pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
def test_creates_fill_the_rate_limit_at_300ms_latency(state_url, sandbox, tmp_path):
    n = 70
    report = _creates(sandbox, FakeCrm(), tmp_path, state_url, n, in_flight=8, prefix="11")
    assert report.counts.get("okitoki_contact_create") == n, report.errors
    sent = _arrivals(sandbox, "contacts/add")
    assert len(sent) == n and not [r for r in sent if r["status"] == 429]
    ratio = _sustained_ratio([r["at"] for r in sent], RPM)
    assert 0.9 <= ratio <= 1.02, ratio          # the whole limit, and never beyond it
    assert len(_phones_once(sandbox, "11")) == n


@pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
def test_one_request_at_a_time_cannot_reach_the_limit_at_300ms(state_url, sandbox, tmp_path):
    # The baseline the test above beats: one in flight is 1/latency, a sixth of the limit.
    n = 9
    report = _creates(sandbox, FakeCrm(), tmp_path, state_url, n, in_flight=1, prefix="22")
    assert report.counts.get("okitoki_contact_create") == n
    ratio = _sustained_ratio([r["at"] for r in _arrivals(sandbox, "contacts/add")], RPM)
    assert ratio < 0.3, ratio


@pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
def test_creates_retried_after_a_crash_go_out_in_parallel_after_one_look_up(state_url, sandbox, tmp_path):
    """A holder killed in the middle of a batch leaves the whole batch claimed; every create
    of it is retried (``attempts > 1``) and looks for a contact its earlier try made. The look-up
    is one export for the group, made before the split; the creates then fill the rate limit
    like any others (they used to stay in one piece: one at a time, a sixth of the limit at
    300 ms), and what the dead holder did make is adopted, never made twice."""
    from datetime import timedelta

    from syncd.engine.outbox import Lane
    from syncd.engine.reconcile import reconcile
    from syncd.model import ContactWrite
    from syncd.store import outbox as sql

    crm, n, made = FakeCrm(), 40, 5
    for i in range(n):
        crm.add((f"067544{i:04d}",), name=f"Crash {i}", status="won")
    syncer = _syncer(state_url, sandbox, crm, tmp_path, in_flight=8)
    try:
        syncer.pull_crm_contacts()
        reconcile(syncer.ctx)
        claimed = sql.claim(syncer.store, lanes=[int(Lane.CONTACTS)], limit=1000, holder="killed",
                            now=syncer.ctx.now(), hold=timedelta(seconds=-1))   # its claim expired
        assert len(claimed) == n
        for i in range(made):                    # the requests the killed holder got out
            syncer.okitoki.upsert_contact(ContactWrite(key=f"k{i}", id=None, fields={"name": f"Crash {i}"},
                                                       phones=(f"+38067544{i:04d}",)))
        _far_away(sandbox)
        report = syncer.push()
    finally:
        syncer.close()
    assert report.counts.get("okitoki_contact_create") == n, report.errors
    assert len(_arrivals(sandbox, "contacts/export")) == 1          # one look-up for all of them
    sent = _arrivals(sandbox, "contacts/add")
    assert len(sent) == n - made                                    # the made ones adopted
    ratio = _sustained_ratio([r["at"] for r in sent], RPM)
    assert ratio >= 0.6, ratio
    assert len(_phones_once(sandbox, "44")) == n


class _SlowLookups(FakeCrm):
    """A CRM whose phone search takes a while, counting how many run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.now_running = self.most_at_once = 0
        self._count = threading.Lock()

    def find_by_phone(self, phone_e164: str):
        with self._count:
            self.now_running += 1
            self.most_at_once = max(self.most_at_once, self.now_running)
        try:
            time.sleep(0.05)
            return super().find_by_phone(phone_e164)
        finally:
            with self._count:
                self.now_running -= 1


@pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
def test_crm_creates_retried_after_a_crash_look_their_numbers_up_in_parallel(state_url, sandbox, tmp_path):
    """The CRM side of the test above: each retried create searches the CRM for its number
    (one request each) before it creates; those searches run in parallel, whole write batches
    to a worker, and what the dead holder made is adopted, never made twice."""
    from datetime import timedelta

    from syncd.engine.outbox import Lane
    from syncd.engine.reconcile import reconcile
    from syncd.model import ContactWrite
    from syncd.phones import normalize
    from syncd.store import outbox as sql

    crm, n, made = _SlowLookups(), 40, 4
    syncer = _syncer(state_url, sandbox, crm, tmp_path, in_flight=8)
    try:
        for i in range(n):
            syncer.okitoki.upsert_contact(ContactWrite(key=f"o{i}", id=None, fields={"name": f"Lead {i}"},
                                                       phones=(f"+38067545{i:04d}",)))
        syncer.pull_okitoki_contacts()
        reconcile(syncer.ctx)
        claimed = sql.claim(syncer.store, lanes=[int(Lane.CONTACTS)], limit=1000, holder="killed",
                            now=syncer.ctx.now(), hold=timedelta(seconds=-1))
        assert len(claimed) >= n and {r.target for r in claimed} == {"crm"}   # (+ the demo's)
        for i in range(made):                    # the writes the killed holder got out
            crm.add((f"067545{i:04d}",), name=f"Lead {i}")
        report = syncer.push()
    finally:
        syncer.close()
    assert report.counts.get("crm_contact_create") == len(claimed), report.errors
    assert crm.most_at_once >= 2                 # one at a time before
    phones = [normalize(p, "UA") for row in crm.rows.values() for p in row.phones]
    assert len(phones) == len(set(phones))
    assert sum(1 for p in phones if p.startswith("+38067545")) == n


@pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
def test_a_retry_after_pauses_every_request_in_flight(state_url, sandbox, tmp_path):
    crm = FakeCrm()
    for i in range(40):
        crm.add((f"067533{i:04d}",), name=f"Storm {i}", status="won")
    syncer = _syncer(state_url, sandbox, crm, tmp_path, in_flight=8, rpm=6000)
    try:
        syncer.cycle()                                   # created, no faults
        for cid, row in list(crm.rows.items()):
            if row.fields.get("name", "").startswith("Storm"):
                crm.edit(cid, name=row.fields["name"] + " renamed")
        syncer.pull_crm_contacts()
        sandbox.set_faults([{"kind": "latency", "seconds": 0.1, "rate": 1.0},
                            {"kind": "retry_after", "seconds": 1, "rate": 0.2, "count": 3}], seed=7)
        sandbox.clear_requests()
        started = time.monotonic()
        report = syncer.push()
        took = time.monotonic() - started
    finally:
        syncer.close()
    journal = sandbox.requests(limit=2000)
    assert journal["by_status"].get("429") == 3
    assert journal["early_retries"] == 0, "a worker sent a request inside the Retry-After"
    assert report.counts.get("okitoki_contact_update") == 40, report.errors
    assert took >= 1.0
    names = sorted(c["name"] for c in sandbox.state()["contacts"] if c["name"].startswith("Storm"))
    assert names == sorted(f"Storm {i} renamed" for i in range(40))


@pytest.mark.parametrize("state_url", ["sqlite"], indirect=True)
def test_replaced_tasks_are_removed_before_their_successors_are_made(state_url, sandbox, tmp_path):
    crm = FakeCrm()
    ids = [crm.add((f"067544{i:04d}",), name=f"Lead {i}", status="new") for i in range(12)]
    syncer = _syncer(state_url, sandbox, crm, tmp_path, in_flight=8, rpm=6000)
    try:
        syncer.cycle()
        for i, cid in enumerate(ids):               # new numbers: every task is replaced
            crm.edit(cid, phones=(f"067545{i:04d}",))
        sandbox.set_faults([{"kind": "latency", "seconds": 0.1, "rate": 1.0}])
        sandbox.clear_requests()
        for _ in range(3):
            syncer.cycle()
    finally:
        syncer.close()
    recent = sandbox.requests(limit=2000)["recent"]
    removes = [r for r in recent if "delete_task" in r["path"]]
    adds = [r for r in recent if "tasks/add" in r["path"] or "create_task" in r["path"]]
    assert len(removes) == 12 and adds
    assert max(r["at"] + r["duration_ms"] / 1000 for r in removes) <= min(r["at"] for r in adds)
    tasks = [t for t in sandbox.state()["tasks"] if t["dialer_id"] == 101 and t["status"] == "pending"]
    phones = sorted(p for t in tasks for p in t["phones"] if "67545" in p)
    assert len(phones) == 12 and len(tasks) == len({tuple(t["phones"]) for t in tasks})
    assert not [p for t in tasks for p in t["phones"] if "67544" in p]


def test_two_instances_with_requests_in_flight_send_everything_once(state_url, sandbox, tmp_path):
    crm = FakeCrm()
    for i in range(40):
        crm.add((f"067555{i:04d}",), name=f"Shared {i}", status="new")
    a = _syncer(state_url, sandbox, crm, tmp_path, in_flight=8, rpm=6000, name="a")
    b = _syncer(state_url, sandbox, crm, tmp_path, in_flight=8, rpm=6000, name="b")
    sandbox.set_faults([{"kind": "latency", "seconds": 0.05, "rate": 1.0}])
    errors = cycle_in_threads([a, b], 3)
    b.close()
    try:
        assert not errors
        a.cycle()
    finally:
        a.close()
    names = [c["name"] for c in sandbox.state()["contacts"] if c["name"].startswith("Shared")]
    assert sorted(names) == sorted(f"Shared {i}" for i in range(40))
    tasks = [t for t in sandbox.state()["tasks"] if t["dialer_id"] == 101]
    assert len(tasks) == 40


# -- partitions (pure) ------------------------------------------------------------------------

def _rows(n: int, links: int, seed: int) -> list:
    rnd = random.Random(seed)
    return [SimpleNamespace(id=i, link_id=rnd.randrange(links)) for i in range(n)]


@pytest.mark.parametrize("seed", range(20))
def test_a_links_rows_share_one_partition_in_claim_order(seed):
    rows = _rows(200, 37, seed)
    parts = partition(rows, ways=8, unit=1, key=lambda r: r.link_id)
    assert 1 < len(parts) <= 8
    where = {}
    for n, part in enumerate(parts):
        assert [r.id for r in part] == sorted(r.id for r in part)
        for r in part:
            assert where.setdefault(r.link_id, n) == n
    assert sorted(r.id for p in parts for r in p) == list(range(200))
    assert max(map(len, parts)) <= 2 * 200 / len(parts)        # about balanced


def test_batched_requests_are_split_only_in_whole_requests():
    rows = _rows(120, 120, 1)
    assert len(partition(rows, ways=8, unit=50, key=lambda r: r.id)) == 3   # 3 requests' worth
    assert len(partition(rows[:50], ways=8, unit=50, key=lambda r: r.id)) == 1
    assert partition([], ways=8, unit=1, key=lambda r: r.id) == []


def test_calls_of_one_unknown_number_share_a_partition():
    # unknown_numbers = "create_contact": two calls of one number at once would make two contacts
    key, _ = SPLITS[("crm", "log_call")]
    rows = [SimpleNamespace(id=i, link_id=None, payload={"phone": f"+38067000000{i % 3}"})
            for i in range(30)]
    parts = partition(rows, ways=4, unit=1, key=key)
    assert len(parts) == 3
    assert all(len({r.payload["phone"] for r in p}) == 1 for p in parts)


def test_in_flight_comes_from_the_config_then_the_connector(tmp_path):
    from syncd.engine.context import Context
    from connectors.sql.connector import SqlConnector

    url = f"sqlite:///{tmp_path / 's.db'}"
    store = open_store(url, create=True)
    try:
        ctx = Context(config=make_config(url), store=store, crm=FakeCrm(), okitoki=None)
        assert ctx.in_flight("okitoki") == 8 and ctx.in_flight("crm") == 4
        ctx.crm = SimpleNamespace(default_max_in_flight=SqlConnector.default_max_in_flight)
        assert ctx.in_flight("crm") == 1
        ctx.config = make_config(url, okitoki__max_in_flight=3, crm__max_in_flight=6)
        assert ctx.in_flight("okitoki") == 3 and ctx.in_flight("crm") == 6
    finally:
        store.close()


def test_bulk_task_imports_stay_whole_one_partition_per_dialer():
    key, unit = SPLITS[("okitoki", "add_task")]
    rows = [SimpleNamespace(id=i, link_id=i, payload={"dialer_id": 101 + i % 2}) for i in range(1500)]
    parts = partition(rows, ways=8, unit=unit(None), key=key)
    assert sorted(len(p) for p in parts) == [750, 750]
    assert all(len({r.payload["dialer_id"] for r in p}) == 1 for p in parts)
