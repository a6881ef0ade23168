"""Invariants 2, 5 and 6 under stress: a crash between a remote write and its commit, several
instances on one store, a nearly spent budget, and duplicate numbers."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import func, select

from syncd.engine.build import build_syncer
from syncd.store import StoreBudget
from syncd.store.tables import Link, MergeCandidate, Outbox

from .conftest import cycle_in_threads, make_config
from .fake_crm import FakeCrm
from .test_flows import _count

LINK, OUTBOX = Link.__table__, Outbox.__table__


class Crash(BaseException):
    """Stands for kill -9: nothing after it runs, no except clause catches it."""


class CrashAfterCreate:
    """Wraps the real client: the first contact create reaches Oki-Toki, then the process dies."""

    def __init__(self, real):
        self._real = real

    def __getattr__(self, name):
        return getattr(self._real, name)

    def upsert_contact(self, write):
        new_id = self._real.upsert_contact(write)
        if write.id is None:           # a create; an update goes through untouched
            raise Crash()
        return new_id


class CrashAfterTasks(CrashAfterCreate):
    """The first bulk task create reaches Oki-Toki, then the process dies."""

    def add_tasks(self, dialer_id, specs):
        self._real.add_tasks(dialer_id, specs)
        raise Crash()


@dataclass
class World:
    """The engine's world (a syncer on a migrated store, the real sandbox, the fake CRM) and
    what these tests do to it: crash a push, restart, start a second syncer on the store."""

    syncer: Any
    sb: Any
    crm: FakeCrm
    state_url: str
    tmp_path: Path

    def __iter__(self) -> Iterator[Any]:
        """``syncer, sb, crm = world``, as with the conftest's world."""
        return iter((self.syncer, self.sb, self.crm))

    def named(self, name: str) -> list[dict[str, Any]]:
        """The sandbox's contacts called ``name``."""
        return [c for c in self.sb.state()["contacts"] if c["name"] == name]

    def another_syncer(self, state_dir: str, **kw: Any) -> Any:
        """A second syncer on the same store, sandbox and CRM (``kw`` for build_syncer)."""
        return build_syncer(make_config(self.state_url, self.sb.url, self.sb.token), crm=self.crm,
                            state_dir=self.tmp_path / state_dir, **kw)

    def crash_in_push(self, dying: type[CrashAfterCreate] = CrashAfterCreate) -> None:
        """Pull the CRM, then push through an Oki-Toki client wrapped in ``dying``: the
        process dies right after its first write of that kind reached Oki-Toki."""
        self.syncer.pull_crm_contacts()
        self.syncer.ctx.okitoki = dying(self.syncer.ctx.okitoki)
        try:
            self.syncer.push()
        except Crash:
            pass

    @contextmanager
    def restarted(self, *, later: timedelta = timedelta(minutes=10)) -> Iterator[Any]:
        """The process started again ``later`` (its claims have expired), closed on exit."""
        clock = self.syncer.ctx.clock
        again = self.another_syncer("crm2", instance_id="restarted", clock=lambda: clock() + later)
        try:
            yield again
        finally:
            again.close()


@pytest.fixture
def world(world, state_url, tmp_path) -> World:
    """The conftest's world (syncer, sandbox, CRM) as a :class:`World`."""
    syncer, sb, crm = world
    return World(syncer, sb, crm, state_url, tmp_path)


def _cycles_without_errors(syncer, times: int) -> None:
    for _ in range(times):
        assert not syncer.cycle().errors


def test_crash_after_remote_create_then_push_first_makes_no_duplicate(world):
    world.crm.add(("0672220001",), name="Once Only", status="won")
    world.crash_in_push()
    assert len(world.named("Once Only")) == 1
    with world.restarted() as again:
        report = again.push()          # the claim expired; no pull ran yet: look up, then adopt
        assert not report.errors, report.errors
        again.cycle()
        again.cycle()
    assert len(world.named("Once Only")) == 1
    assert _count(world.syncer.store, LINK, LINK.c.crm_id.is_not(None), LINK.c.okitoki_id.is_not(None)) == 4


def test_crash_after_remote_create_then_pull_first_links_instead_of_creating(world):
    world.crm.add(("0672220002",), name="Pulled Back", status="won")
    world.crash_in_push()
    with world.restarted() as again:
        _cycles_without_errors(again, 3)
    assert len(world.named("Pulled Back")) == 1


def test_two_instances_on_one_store_do_everything_once(world):
    syncer, sb, crm = world
    for i in range(30):
        crm.add((f"06733300{i:02d}",), name=f"Shared {i}", status="new")
    other = world.another_syncer("crm-b", instance_id="b")
    errors = cycle_in_threads([syncer, other], 3)
    other.close()
    assert not errors
    syncer.cycle()
    names = [c["name"] for c in sb.state()["contacts"] if c["name"].startswith("Shared")]
    assert sorted(names) == sorted(f"Shared {i}" for i in range(30))
    tasks = [t for t in sb.state()["tasks"] if t["dialer_id"] == 101]
    assert len(tasks) == 30


def test_low_budget_pauses_low_lanes_but_do_not_call_goes_on(world):
    syncer, sb, crm = world
    syncer.ctx.budget = budget = StoreBudget(syncer.store, {"okitoki": 100, "crm": None},
                                             clock=syncer.ctx.clock)
    crm.add(("0674440001",), name="Lead", status="new")
    crm.add(("0674440002",), name="Stop Calling", status="won", do_not_call=True)
    budget.spend("okitoki", 93)
    report = syncer.cycle()
    push = report.runs[-1]
    assert push.counts.get("paused_tasks") and push.counts.get("paused_contacts")
    blacklist = next(l for l in sb.state()["lists"] if l["id"] == 7)
    assert any("380674440002" in v for v in blacklist["values"])
    assert not [t for t in sb.state()["tasks"] if "380674440001" in "".join(t["phones"])]
    with syncer.store.begin() as conn:
        waiting = conn.execute(select(func.count()).select_from(OUTBOX).where(
            OUTBOX.c.status == "pending", OUTBOX.c.operation == "add_task")).scalar()
    assert waiting == 1


def test_duplicate_numbers_are_reported_as_merge_candidates_not_linked(world):
    syncer, sb, crm = world
    crm.add(("0675550001",), name="Twin A", status="won")
    crm.add(("+380 67 555 00 01",), name="Twin B", status="won")
    crm.add(("0501112233",), name="Olena K", status="won")   # the sandbox already has this number
    syncer.cycle()
    syncer.cycle()
    twins = [c for c in sb.state()["contacts"] if c["name"].startswith("Twin")]
    assert len(twins) == 1
    with syncer.store.begin() as conn:
        cands = conn.execute(select(MergeCandidate.__table__)).all()
    assert [c.phone for c in cands] == ["+380675550001"]
    assert len([c for c in sb.state()["contacts"] if "380501112233" in c["phones"]]) == 1


def test_read_fetched_before_our_write_is_not_taken_for_a_change(world):
    syncer, sb, crm = world
    cid = crm.add(("0676660001",), name="Orig", email="o@x.io", status="won")
    syncer.cycle()
    oid = next(c["id"] for c in sb.state()["contacts"] if c["name"] == "Orig")
    sb.edit_contact(oid, name="From Okitoki")
    syncer.pull_okitoki_contacts()
    crm.edit(cid, email="new@x.io")          # so the CRM page carries the contact, old name and all
    real = crm.changed_contacts

    def racing(after, limit):
        page = real(after, limit)            # fetched now: name "Orig"
        crm.changed_contacts = real
        syncer.push()                        # meanwhile the push writes "From Okitoki" to the CRM
        return page

    crm.changed_contacts = racing
    report = syncer.pull_crm_contacts()
    assert report.counts.get("stale") == 1
    updates_before = sb.requests()["by_operation"].get("contacts/add-update", 0)
    for _ in range(3):
        syncer.cycle()
    contact = next(c for c in sb.state()["contacts"] if c["id"] == oid)
    assert (contact["name"], contact["email"]) == ("From Okitoki", "new@x.io")
    assert crm.rows[cid].fields["name"] == "From Okitoki"
    assert sb.requests()["by_operation"].get("contacts/add-update", 0) == updates_before + 1


def test_claims_of_a_dead_process_on_this_host_are_taken_over_at_start(world):
    import socket
    import subprocess
    import sys
    from syncd.store import outbox as ob
    syncer, sb, crm = world
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    crm.add(("0672220003",), name="Orphan", status="won")
    syncer.pull_crm_contacts()
    from syncd.engine.reconcile import reconcile
    reconcile(syncer.ctx)
    holder = f"{socket.gethostname()}:{dead}"
    assert ob.claim(syncer.store, lanes=[4], limit=10, holder=holder, now=syncer.ctx.now())
    from syncd.store import acquire_lease, release_lease
    release_lease(syncer.store, "stream:crm:contacts", syncer.ctx.instance_id)
    assert acquire_lease(syncer.store, "stream:crm:contacts", holder, ttl=timedelta(hours=1),
                         now=syncer.ctx.now())
    fresh = world.another_syncer("crm3")                    # default instance id: host:pid
    try:
        fresh.push()                                       # no 2-minute wait for the claim
        assert fresh.pull_crm_contacts().counts.get("not_leader") is None   # nor for the lease
    finally:
        fresh.close()
    assert len(world.named("Orphan")) == 1
    assert ob.claim_holders(syncer.store) == []


def test_crash_after_bulk_task_create_leaves_one_task_per_contact(world):
    for i in range(4):
        world.crm.add((f"06722201{i:02d}",), name=f"Tasked {i}", status="new")
    world.crash_in_push(CrashAfterTasks)
    with world.restarted() as again:
        _cycles_without_errors(again, 2)
    pending = [t for t in world.sb.state()["tasks"] if t["status"] == "pending" and t["dialer_id"] == 101]
    phones = sorted(p.lstrip("+") for t in pending for p in t["phones"] if "3806722201" in p)
    assert phones == sorted(f"3806722201{i:02d}" for i in range(4))


def test_stop_mid_batch_releases_the_rows_not_started(world):
    """Requests already in flight (at most max_in_flight) finish and settle; the rest are
    released untouched."""
    syncer, sb, crm = world
    cfg = syncer.ctx.config
    syncer.ctx.config = cfg.model_copy(update={"okitoki": cfg.okitoki.model_copy(update={"max_in_flight": 2})})
    for i in range(6):
        crm.add((f"06799900{i:02d}",), name=f"Slow {i}", status="won")
    syncer.pull_crm_contacts()
    stop = threading.Event()
    client = syncer.ctx.okitoki
    real = client.upsert_contact
    made = []

    def one_then_stop(write):
        made.append(real(write))
        stop.set()                     # SIGTERM arrives during the first request
        return made[-1]

    client.upsert_contact = one_then_stop
    report = syncer.push(stop)
    assert 1 <= len(made) <= 2
    assert report.counts.get("okitoki_contact_create") == len(made)
    with syncer.store.begin() as conn:
        rows = conn.execute(select(OUTBOX.c.status, OUTBOX.c.attempts).where(
            OUTBOX.c.operation == "contact_create", OUTBOX.c.target == "okitoki")).all()
    assert sorted(r.status for r in rows).count("pending") == len(rows) - len(made)
    assert all(r.attempts == 0 for r in rows if r.status == "pending")
    client.upsert_contact = real
    syncer.cycle()
    assert len([c for c in sb.state()["contacts"] if c["name"].startswith("Slow")]) == 6


def test_ambiguous_failures_of_creates_make_no_duplicates(world):
    from syncd.engine.outbox import Backoff
    syncer, sb, crm = world
    syncer.ctx.backoff = Backoff(base=0, jitter=0, max_attempts=50)
    for i in range(10):
        crm.add((f"06755510{i:02d}",), name=f"Ambiguous {i}", status="new")
    # done by Oki-Toki, but the answer is broken: the client cannot know it worked
    sb.set_faults([{"kind": "truncated_json", "rate": 0.5, "apply": True,
                    "operations": ["contacts/add-update", "dialers/create_task", "imports/tasks/add"]}])
    for _ in range(12):
        syncer.cycle()
    sb.clear_faults()
    syncer.cycle()
    state = sb.state()
    names = sorted(c["name"] for c in state["contacts"] if c["name"].startswith("Ambiguous"))
    assert names == sorted(f"Ambiguous {i}" for i in range(10))
    pending = [t for t in state["tasks"] if t["status"] == "pending" and t["dialer_id"] == 101]
    phones = sorted(p.lstrip("+") for t in pending for p in t["phones"] if "3806755510" in p)
    assert phones == sorted(f"3806755510{i:02d}" for i in range(10))
    assert _count(syncer.store, OUTBOX, OUTBOX.c.status.in_(["pending", "claimed", "dead"])) == 0


def test_contact_that_stops_matching_before_its_task_is_sent_costs_no_request(world):
    syncer, sb, crm = world
    cid = crm.add(("0677710001",), name="Changed Mind", status="new")
    syncer.pull_crm_contacts()
    syncer.push(threading.Event())                 # (nothing stops it: the task goes out)
    cid2 = crm.add(("0677710002",), name="Never Sent", status="new")
    syncer.pull_crm_contacts()
    from syncd.engine.reconcile import reconcile
    reconcile(syncer.ctx)                          # the add_task is queued, not sent
    crm.edit(cid2, status="won")
    before = sb.requests()["by_operation"]
    syncer.cycle()
    after = sb.requests()["by_operation"]
    for op in ("dialers/create_task", "imports/tasks/add", "dialers/delete_task"):
        assert after.get(op, 0) == before.get(op, 0), op
    assert not [t for t in sb.state()["tasks"] if any("380677710002" in p for p in t["phones"])]
    assert crm.rows[cid]


def test_contact_that_stops_matching_while_its_task_is_in_flight_ends_with_no_task(world):
    cid = world.crm.add(("0677720001",), name="In Flight", status="new")
    world.crash_in_push(CrashAfterTasks)
    world.crm.edit(cid, status="won")
    with world.restarted() as again:
        _cycles_without_errors(again, 3)
    open_tasks = [t for t in world.sb.state()["tasks"]
                  if t["status"] == "pending" and any("380677720001" in p for p in t["phones"])]
    assert open_tasks == []


def test_crash_then_a_pull_linking_the_record_during_the_retry_makes_no_duplicate(world):
    world.crm.add(("0672220009",), name="Raced", status="won")
    world.crash_in_push()
    pulled = []
    with world.restarted() as again:
        real_export = again.ctx.okitoki.export_contacts

        def export_racing_a_pull(*args, **kw):
            if not pulled:             # the push's look-up: a pull job links the record now
                pulled.append(True)
                again.pull_okitoki_contacts()
            return real_export(*args, **kw)

        again.ctx.okitoki.export_contacts = export_racing_a_pull
        again.push()
        again.ctx.okitoki.export_contacts = real_export
        again.cycle()
    assert pulled and len(world.named("Raced")) == 1


class PullDuringCreate(CrashAfterCreate):
    """The record is created, then a pull job reads it before the push has recorded it."""

    def __init__(self, real, syncer):
        super().__init__(real)
        self._syncer = syncer

    def upsert_contact(self, write):
        new_id = self._real.upsert_contact(write)
        if write.id is None:           # a create
            self._syncer.pull_okitoki_contacts()
        return new_id


def test_a_pull_meeting_a_new_record_before_its_push_commits_links_it_once(world):
    syncer, sb, crm = world
    a = crm.add(("0672220011",), name="Twin One", status="won")
    crm.add(("067 222 00 11",), name="Twin Two", status="won")       # a merge candidate
    syncer.pull_crm_contacts()
    syncer.ctx.okitoki = PullDuringCreate(syncer.ctx.okitoki, syncer)
    syncer.push()
    syncer.ctx.okitoki = syncer.ctx.okitoki._real
    _cycles_without_errors(syncer, 2)
    assert len([c for c in sb.state()["contacts"] if "380672220011" in "".join(c["phones"])]) == 1
    with syncer.store.begin() as conn:
        row = conn.execute(select(LINK).where(LINK.c.crm_id == a)).one()
    assert row.okitoki_id is not None


def test_a_pull_that_loses_a_race_for_a_link_to_another_instance_reads_the_page_again(world, monkeypatch):
    """Two instances ingesting the same new record at once: the one whose commit hits the
    unique constraint (PostgreSQL, READ COMMITTED) runs that page again, sees the other's
    link and ends with no error, instead of failing the pull until the next cycle."""
    import sqlalchemy.exc

    import syncd.engine.syncer as syncer_module

    syncer, sb, crm = world
    crm.add(("0672220021",), name="Raced Link", status="won")
    real = syncer_module.record_contacts
    raced = []

    def losing_once(*args, **kw):
        if not raced:
            raced.append(True)
            raise sqlalchemy.exc.IntegrityError("INSERT INTO link", {}, Exception("duplicate key"))
        return real(*args, **kw)

    monkeypatch.setattr(syncer_module, "record_contacts", losing_once)
    report = syncer.pull_crm_contacts()
    assert raced and not report.errors, report.errors
    assert report.counts["read"] >= 1
    monkeypatch.setattr(syncer_module, "record_contacts", real)
    _cycles_without_errors(syncer, 2)
    assert len(world.named("Raced Link")) == 1
