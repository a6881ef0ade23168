"""Contacts in the sandbox's CRM: create or update by field, export by updated_at window."""

from __future__ import annotations

import json

from .conftest import api


def _contact(sandbox, contact_id):
    return next(c for c in sandbox.state()["contacts"] if c["id"] == contact_id)


def test_add_update_creates_then_changes_only_the_given_fields(sandbox):
    r = api(sandbox, "contacts/add-update", name="Ann", phones="380501112299", email="ann@example.com",
            details=json.dumps({"city": "Kyiv", "order": "1"}), tags="a,b")
    assert r.status_code == 200, r.text
    cid = r.json()["contact_id"]
    r = api(sandbox, "contacts/add-update", json_body={"contact_id": cid, "name": "Ann B.",
                                                       "details": {"order": "2", "city": None, "new": 1}})
    assert r.json() == {"result": "success", "contact_id": cid}
    c = _contact(sandbox, cid)
    assert c["name"] == "Ann B." and c["email"] == "ann@example.com" and c["tags"] == ["a", "b"]
    assert c["phones"] == ["380501112299"]
    assert c["details"] == {"order": "2", "new": 1}  # merged by key; null removes a key


def test_update_moves_updated_at_to_the_sandbox_clock(sandbox):
    cid = api(sandbox, "contacts/add-update", name="Bo").json()["contact_id"]
    before = _contact(sandbox, cid)["updated_at"]
    sandbox.advance_clock(3600)
    api(sandbox, "contacts/add-update", contact_id=cid, email="bo@example.com")
    assert _contact(sandbox, cid)["updated_at"] >= before + 3600


def test_a_new_contact_needs_a_name_or_phones_and_a_foreign_one_is_401(sandbox):
    assert api(sandbox, "contacts/add-update", email="x@example.com").status_code == 422
    sandbox.seed(companies=[{"id": 2, "name": "Other", "contacts": [{"id": 900, "name": "Theirs"}]}])
    assert api(sandbox, "contacts/add-update", contact_id=900, name="Mine now").status_code == 401
    assert _contact(sandbox, 900)["name"] == "Theirs"


def test_export_pages_in_updated_at_then_id_order_without_gaps_or_repeats(sandbox):
    stamp = "2026-01-10T10:00:00Z"
    sandbox.seed(contacts=[{"name": f"C{i}", "phones": [f"3806700000{i:02d}"],
                            "updated_at": stamp if i % 2 else "2026-01-10T09:00:00Z"} for i in range(25)])
    seen, page, pages = [], 1, None
    while pages is None or page <= pages:
        body = api(sandbox, "contacts/export", "GET", per_page=10, page=page,
                   updated_to="31.01.2026 00:00:00").json()
        pages = body["pages"]
        seen += [(c["updated_at"], c["id"]) for c in body["contacts"]]
        page += 1
    assert pages == 3 and len(seen) == 25 and len({i for _, i in seen}) == 25
    ids = [i for _, i in seen]
    assert ids[:13] == sorted(ids[:13]) and ids[13:] == sorted(ids[13:])
    assert seen[0][0] == "10.01.2026 11:00:00" and seen[-1][0] == "10.01.2026 12:00:00"  # UTC+2


def test_export_window_is_inclusive_and_in_the_accounts_time_zone(sandbox):
    sandbox.seed(contacts=[{"name": "a", "updated_at": "2026-01-10T10:00:00Z"},
                           {"name": "b", "updated_at": "2026-01-10T10:00:01Z"}])
    body = api(sandbox, "contacts/export", "GET", updated_from="10.01.2026 12:00:00",
               updated_to="10.01.2026 12:00:00").json()
    assert [c["name"] for c in body["contacts"]] == ["a"]


def test_export_across_the_autumn_dst_change(sandbox):
    """Kyiv leaves summer time on 25.10.2026 at 04:00 EEST (01:00 UTC): 03:xx happens twice."""
    sandbox.seed(contacts=[{"name": n, "updated_at": t} for n, t in [
        ("before", "2026-10-24T23:30:00Z"), ("first-0330", "2026-10-25T00:30:00Z"),
        ("second-0330", "2026-10-25T01:30:00Z"), ("after", "2026-10-25T02:30:00Z")]])
    everything = api(sandbox, "contacts/export", "GET", updated_to="26.10.2026 00:00:00").json()["contacts"]
    assert [c["updated_at"] for c in everything] == [
        "25.10.2026 02:30:00", "25.10.2026 03:30:00", "25.10.2026 03:30:00", "25.10.2026 04:30:00"]
    # 03:00 is read as its first occurrence (EEST, 00:00 UTC); 04:00 exists once (EET, 02:00 UTC)
    window = api(sandbox, "contacts/export", "GET", updated_from="25.10.2026 03:00:00",
                 updated_to="25.10.2026 04:00:00").json()
    assert [c["name"] for c in window["contacts"]] == ["first-0330", "second-0330"]


def test_export_across_the_spring_dst_change(sandbox):
    """Kyiv moves to summer time on 29.03.2026 at 03:00 EET (01:00 UTC): no 03:xx that night."""
    sandbox.seed(contacts=[{"name": "a", "updated_at": "2026-03-29T00:30:00Z"},
                           {"name": "b", "updated_at": "2026-03-29T01:30:00Z"}])
    rendered = [c["updated_at"] for c in api(sandbox, "contacts/export", "GET",
                                              updated_to="30.03.2026 00:00:00").json()["contacts"]]
    assert rendered == ["29.03.2026 02:30:00", "29.03.2026 04:30:00"]
    window = api(sandbox, "contacts/export", "GET", updated_from="29.03.2026 04:00:00",
                 updated_to="30.03.2026 00:00:00").json()
    assert [c["name"] for c in window["contacts"]] == ["b"]


def test_export_refuses_more_than_1000_a_page_and_bad_dates(sandbox):
    r = api(sandbox, "contacts/export", "GET", per_page=1001, updated_from="yesterday")
    assert r.status_code == 422
    assert set(r.json()["errors"]) == {"per_page", "updated_from"}


def test_admin_edit_behind_the_daemons_back_shows_in_the_next_export(sandbox):
    sandbox.edit_contact(1, name="Renamed", updated_at="2030-01-01T00:00:00Z")
    body = api(sandbox, "contacts/export", "GET", updated_from="01.01.2030 00:00:00").json()
    assert [(c["id"], c["name"], c["updated_at"]) for c in body["contacts"]] == [
        (1, "Renamed", "01.01.2030 02:00:00")]


def test_a_deleted_contact_is_exported_as_a_tombstone_and_refused_after(sandbox):
    sandbox.advance_clock(60)
    sandbox.delete_contact(2)
    body = api(sandbox, "contacts/export", "GET", per_page=1000).json()
    tomb = [c for c in body["contacts"] if c.get("deleted")]
    assert [c["id"] for c in tomb] == [2] and body["contacts"][-1]["id"] == 2  # newest last
    assert api(sandbox, "contacts/add-update", contact_id=2, name="Back").status_code == 401
