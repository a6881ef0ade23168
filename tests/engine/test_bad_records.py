"""Invariant 7: a record that cannot be mapped or is refused is quarantined with its reason
and payload, and the rest of the batch syncs."""

from __future__ import annotations

from datetime import datetime

from syncd.engine.status import list_dead_letters
from syncd.model import Contact

from .test_flows import _okitoki_contact

NAIVE = datetime(2026, 1, 1, 12, 0)


class Opaque:
    pass


BAD_CRM_RECORDS = {
    "all numbers invalid": dict(phones=("123",)),
    "letters for a number": dict(phones=("call me",)),
    "number is not text": dict(phones=(380671234567,)),
    "phones is one string": dict(phones="0671234567"),
    "too many numbers": dict(phones=tuple(f"06712345{i:02d}" for i in range(25))),
    "empty number": dict(phones=("",)),
    "NUL in a name": dict(fields={"name": "Bad\x00Name"}),
    "name too long": dict(fields={"name": "x" * 5000}),
    "object as a value": dict(fields={"name": Opaque()}),
    "bytes as a value": dict(fields={"email": b"a@b.c"}),
    "NaN as a value": dict(fields={"status": float("nan")}),
    "do-not-call is not yes/no": dict(fields={"do_not_call": "maybe"}),
    "do-not-call is a number": dict(fields={"do_not_call": 7}),
    "object inside a dict": dict(fields={"status": {"a": Opaque()}}),
    "object inside a list": dict(fields={"status": [Opaque()]}),
    "NUL inside a list": dict(fields={"status": ["a\x00"]}),
    "no time zone on updated_at": dict(updated_at=NAIVE),
    "empty id": dict(id=""),
    "blank id": dict(id="   "),
    "id is not text": dict(id=17),
}


def test_twenty_kinds_of_bad_records_are_quarantined_while_the_rest_syncs(world):
    syncer, sb, crm = world
    good = crm.add(("0671110001",), name="Good One", status="won")
    crm.add(("0671110002",), name="Good Two", email="two@example.com", status="won")
    refused_by_crm = "Refused Name"
    crm.refuse.add(refused_by_crm)
    for n, (kind, bad) in enumerate(BAD_CRM_RECORDS.items()):
        crm.injected.append(Contact(id=bad.get("id", f"bad-{n}"), fields=bad.get("fields", {"name": kind}),
                                    phones=bad.get("phones", ("0671119999",)),
                                    updated_at=bad.get("updated_at", datetime.now().astimezone())))
    crm.add(("0671110003",), name="Not An Email", email="nope", status="won")   # Oki-Toki answers 422
    # A contact created in Oki-Toki that the CRM refuses (create_in_crm = true).
    sb.seed(contacts=[{"name": refused_by_crm, "phones": ["380671110004"]}])
    for _ in range(3):
        syncer.cycle()
    assert _okitoki_contact(sb, "Good One") and _okitoki_contact(sb, "Good Two")
    assert crm.rows[good].fields["name"] == "Good One"
    dead = list_dead_letters(syncer.store)
    ingest = [d for d in dead if d["operation"] == "ingest"]
    assert len(ingest) == len(BAD_CRM_RECORDS), [d["reason"] for d in ingest]
    for d in dead:
        assert d["reason"] and d["payload"] is not None
    refused = {(d["target"], d["operation"]) for d in dead if d["operation"] != "ingest"}
    assert ("okitoki", "contact_create") in refused       # e-mail refused by Oki-Toki (422)
    assert ("crm", "contact_create") in refused           # name refused by the CRM
    assert len(dead) >= 22
    # nothing left half-done: the next cycle writes nothing and retries nothing
    report = syncer.cycle()
    assert not report.errors


def test_a_quarantined_record_fixed_at_the_source_leaves_dead_letters(world):
    syncer, sb, crm = world
    cid = crm.add(("123",), name="Typo Number", status="won")
    syncer.cycle()
    assert [d["operation"] for d in list_dead_letters(syncer.store)] == ["ingest"]
    crm.edit(cid, phones=("0671230077",))
    syncer.cycle()
    assert list_dead_letters(syncer.store) == []
    assert _okitoki_contact(sb, "Typo Number")
