"""BottleCRM connector: error mapping and the full-scan change detection (httpx.MockTransport)."""

from __future__ import annotations

import email.utils
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from connectors._bottlecrm_scan import OVERLAP, scan_changed
from connectors.bottlecrm import BottleCrmConnector, BottleCrmOptions, interaction, session_of
from syncd.errors import (AuthenticationError, ConfigError, PermissionDenied, Throttled,
                          TransientError)
from syncd.model import Call, CallDirection, CallOutcome, ContactWrite, Cursor
from syncd.testing.context import connector_context

TOKEN = "bcrm_pat_secret-token-value-123456"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make(tmp_path, handler, **options) -> BottleCrmConnector:
    opts = BottleCrmOptions(url="http://bcrm.test", token=TOKEN, **options)
    ctx = connector_context(tmp_path, field_names=("first_name", "last_name", "email"),
                            do_not_call_field="do_not_call", transport=httpx.MockTransport(handler))
    return BottleCrmConnector(opts, ctx)


@pytest.mark.parametrize("status, body, error", [
    (401, {"detail": "Invalid token"}, AuthenticationError),
    (403, {"detail": "Organization context is required. Please login again."}, AuthenticationError),
    (403, {"detail": "This token's scopes do not allow contacts:write"}, PermissionDenied),
    (429, {"detail": "Request was throttled."}, Throttled),
    (500, None, TransientError),
    (503, None, TransientError),
])
def test_remote_failures_surface_as_the_shared_errors(tmp_path, status, body, error):
    def handler(request):
        if body is None:
            return httpx.Response(status, text="<!doctype html><h1>Server Error</h1>")
        return httpx.Response(status, json=body, headers={"Retry-After": "1"})

    with pytest.raises(error) as caught:
        make(tmp_path, handler).health_check()
    assert TOKEN not in str(caught.value)
    if status == 429:
        assert caught.value.retry_after == timedelta(seconds=1)


def test_field_errors_fail_one_record_with_the_field_named(tmp_path):
    def handler(request):
        body = json.loads(request.content)
        if body.get("email") == "bad":
            return httpx.Response(400, json={"error": True,
                                             "errors": {"email": ["Enter a valid email address."]}})
        return httpx.Response(200, json={"error": False, "id": str(uuid.uuid4())})

    results = make(tmp_path, handler).upsert_contacts([
        ContactWrite("a", None, {"first_name": "A", "last_name": "B", "email": "bad"}),
        ContactWrite("b", None, {"first_name": "C", "last_name": "D"}, ("+380671234567",)),
    ])
    assert [r.ok for r in results] == [False, True]
    assert "email: Enter a valid email address." in results[0].error


def test_an_ambiguous_create_is_not_resent_and_is_looked_up_next_time(tmp_path):
    sent, existing = [], []

    def handler(request):
        if request.method == "POST":
            sent.append(json.loads(request.content))
            existing.append({"id": "c-1", "source_ref": sent[-1]["source_ref"],
                             "phone": "+380671234567", "updated_at": "2026-03-01T12:00:00Z"})
            return httpx.Response(504, text="gateway timeout")  # created, reply lost
        return httpx.Response(200, json={"count": len(existing), "results": existing})

    connector = make(tmp_path, handler)
    write = ContactWrite("k", None, {"first_name": "A", "last_name": "B"}, ("+380671234567",))
    [first] = connector.upsert_contacts([write])
    assert not first.ok and first.retriable and len(sent) == 1
    [again] = connector.upsert_contacts([write])
    assert again.ok and again.id == "c-1" and len(sent) == 1


def test_call_interaction_maps_direction_outcome_and_tags_the_session():
    call = Call("77", CallDirection.DIALER, "+380671234567", T0, 95, 60, CallOutcome.ANSWERED)
    body = interaction("c-1", call)
    assert (body["kind"], body["direction"], body["outcome"], body["duration_seconds"]) == (
        "call", "outbound", "connected", 95)
    assert session_of(body["subject"]) == "77"
    assert body["occurred_at"] == "2026-03-01T12:00:00+00:00"


# -- the scan ----------------------------------------------------------------------------

class FakeList:
    """A contact list served newest-created first with limit/offset, like BottleCRM's."""

    def __init__(self, n: int, now: datetime = T0 + timedelta(hours=1)) -> None:
        self.rows = [{"id": f"{i:05d}", "updated_at": (T0 + timedelta(seconds=i % 7)).isoformat()}
                     for i in range(n)]  # many equal timestamps
        self.now = now
        self.requests = 0
        self.on_request = None

    def fetch(self, offset: int, limit: int) -> httpx.Response:
        self.requests += 1
        if self.on_request:
            self.on_request(self)
        page = self.rows[offset:offset + limit]
        return httpx.Response(200, json={"count": len(self.rows), "results": page},
                              headers={"Date": email.utils.format_datetime(self.now, usegmt=True)})


def _walk(fake, limit, page_size, after=Cursor()):
    out = []
    while True:
        rows, more = scan_changed(fake.fetch, after=after, limit=limit, page_size=page_size, settle=1)
        out += rows
        if rows:
            last = rows[-1]
            after = Cursor(datetime.fromisoformat(last["updated_at"]), last["id"])
        if not more:
            return out


def _order(rows):
    return sorted(rows, key=lambda r: (datetime.fromisoformat(r["updated_at"]), r["id"]))


def test_scan_walk_returns_every_row_once_in_order_across_equal_timestamps():
    fake = FakeList(230)
    out = _walk(fake, limit=20, page_size=50)
    assert [r["id"] for r in out] == [r["id"] for r in _order(fake.rows)]


def test_scan_costs_one_pass_of_the_list_per_page_of_changes():
    fake = FakeList(230)
    scan_changed(fake.fetch, after=Cursor(), limit=20, page_size=50, settle=1)
    # ceil(total / page_size) with the small overlap between pages
    assert fake.requests == -(-(230 - OVERLAP) // (50 - OVERLAP))


@pytest.mark.parametrize("shift", [1, OVERLAP + 3])
def test_rows_deleted_during_the_scan_do_not_hide_others(shift):
    fake = FakeList(120)

    def delete_early_rows(f):
        if f.requests == 2:  # the list shifts left under the scan (by less / more than the overlap)
            del f.rows[:shift]

    fake.on_request = delete_early_rows
    rows, more = scan_changed(fake.fetch, after=Cursor(), limit=500, page_size=30, settle=1)
    assert {r["id"] for r in fake.rows} <= {r["id"] for r in rows}
    assert not more


def test_rows_younger_than_the_scan_wait_for_the_next_poll():
    fake = FakeList(10, now=T0 + timedelta(seconds=3))  # rows stamped T0+0s..T0+6s
    rows, more = scan_changed(fake.fetch, after=Cursor(), limit=100, page_size=50, settle=1)
    assert all(datetime.fromisoformat(r["updated_at"]) < T0 + timedelta(seconds=2) for r in rows)
    assert not more


def test_changed_contacts_uses_the_scan_and_reports_the_cursor(tmp_path):
    fake = FakeList(30)

    def handler(request):
        p = request.url.params
        return fake.fetch(int(p["offset"]), int(p["limit"]))

    connector = make(tmp_path, handler, scan_page_size=10)
    page = connector.changed_contacts(Cursor(), 5)
    assert page.more and len(page.contacts) == 5
    assert page.next == Cursor(page.contacts[-1].updated_at, page.contacts[-1].id)
    assert any("ceil(total contacts / 10)" in n for n in connector.capabilities.notes)


def test_health_check_names_mapped_fields_bottlecrm_lacks(tmp_path):
    row = {"id": "c-1", "first_name": "A", "last_name": "B", "email": None, "do_not_call": False}

    def handler(request):
        return httpx.Response(200, json={"count": 1, "results": [row]})

    make(tmp_path, handler).health_check()
    ctx = connector_context(tmp_path, field_names=("name", "status"),
                            transport=httpx.MockTransport(handler))
    connector = BottleCrmConnector(BottleCrmOptions(url="http://bcrm.test", token=TOKEN), ctx)
    with pytest.raises(ConfigError, match="no field 'status'"):
        connector.health_check()


def test_delete_contacts_deletes_each_and_a_contact_already_gone_is_ok(tmp_path):
    seen = []
    gone = str(uuid.uuid4())

    def handler(request):
        seen.append((request.method, request.url.path))
        if gone in request.url.path:
            return httpx.Response(404, json={"detail": "Not found."})
        return httpx.Response(204)

    kept = str(uuid.uuid4())
    connector = make(tmp_path, handler)
    results = connector.delete_contacts([kept, gone])
    assert [(r.key, r.ok) for r in results] == [(kept, True), (gone, True)]
    assert seen == [("DELETE", f"/api/contacts/{kept}/"), ("DELETE", f"/api/contacts/{gone}/")]
    assert connector.capabilities.contacts_delete and connector.capabilities.deletes == "verify_only"
