"""Oki-Toki records ⇄ the canonical model, and what the client does with odd entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import structlog

from syncd.errors import InvalidRecord
from syncd.model import CallDirection, CallOutcome, ContactWrite, TaskSpec
from syncd.okitoki.dates import account_zone
from syncd.okitoki.records import call_from_raw, contact_from_raw, contact_payload, task_payload

from .conftest import make_client
from .scripted import Answer

KYIV = account_zone("Europe/Kyiv")
RAW = {"session_id": 901, "ani": "380501112233", "dnis": "380440000000", "stime": 1_700_000_000,
       "etime": 1_700_000_095, "ctime": 80, "result": "answered", "user_id": 4,
       "record_url": "https://rec/901.mp3", "dialer_id": None, "task_id": None}


@pytest.mark.parametrize("call_type,direction,phone", [
    ("I", CallDirection.INBOUND, "380501112233"),
    ("O", CallDirection.OUTBOUND, "380440000000"),
    ("C", CallDirection.OUTBOUND, "380440000000"),
    ("P", CallDirection.DIALER, "380440000000"),
])
def test_call_type_decides_direction_and_whose_number_is_the_customers(call_type, direction, phone) -> None:
    call = call_from_raw({**RAW, "call_type": call_type}, KYIV)
    assert call.direction is direction and call.phone == phone
    assert call.started_at == datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)
    assert (call.duration_s, call.talk_s, call.agent) == (95, 80, "4")
    assert call.details["session_id"] == 901


@pytest.mark.parametrize("result,ctime,outcome", [
    ("answered", 10, CallOutcome.ANSWERED), ("no_answer", 0, CallOutcome.NO_ANSWER),
    ("busy", 0, CallOutcome.BUSY), ("failed", 0, CallOutcome.FAILED),
    (None, 12, CallOutcome.ANSWERED), ("something_new", 0, CallOutcome.FAILED),
])
def test_results_map_to_outcomes(result, ctime, outcome) -> None:
    assert call_from_raw({**RAW, "call_type": "I", "result": result, "ctime": ctime}, KYIV).outcome is outcome


def test_an_entry_without_session_or_type_is_an_invalid_record() -> None:
    with pytest.raises(InvalidRecord):
        call_from_raw({**RAW, "call_type": "X"}, KYIV)
    with pytest.raises(InvalidRecord):
        call_from_raw({**RAW, "call_type": "I", "session_id": None}, KYIV)


def test_a_contact_write_sends_details_as_one_object_and_phones_only_when_given() -> None:
    payload = contact_payload(ContactWrite(key="k", id="5", fields={
        "name": "Ann", "details.city": "Kyiv", "details.status": "new"}))
    assert payload == {"name": "Ann", "contact_id": "5", "details": {"city": "Kyiv", "status": "new"}}
    assert contact_payload(ContactWrite(key="k", id=None, phones=("+380501112233",)))["phones"] == ["+380501112233"]


def test_a_task_date_is_sent_in_the_account_zone_and_an_empty_region_is_kept() -> None:
    payload = task_payload(TaskSpec(dialer_id="1", phones=("+1",), region="",
                                    date=datetime(2024, 7, 1, 9, 0, tzinfo=UTC)), KYIV)
    assert payload["date"] == "01.07.2024 12:00:00" and payload["region"] == ""


def test_unreadable_call_log_entries_are_logged_and_skipped_not_fatal(scripted) -> None:
    scripted.default = Answer(200, {"calls": [
        {**RAW, "call_type": "I"}, {**RAW, "session_id": 902, "call_type": "?"},
        {**RAW, "session_id": 903, "call_type": "P"}], "page": 1, "pages": 1})
    now = datetime.now(UTC)
    with structlog.testing.capture_logs() as logs:
        calls = list(make_client(scripted.url).call_log(now - timedelta(hours=1), now))
    assert [c.session_id for c in calls] == ["901", "903"]
    [skipped] = [e for e in logs if e["event"] == "okitoki.record_skipped"]
    assert skipped["record_id"] == "902"


def test_unreadable_call_log_entries_go_to_the_handler_with_id_reason_and_entry(scripted) -> None:
    scripted.default = Answer(200, {"calls": [
        {**RAW, "session_id": 904, "call_type": "?"}, {**RAW, "session_id": 905, "stime": "soon"},
        {**RAW, "session_id": 906, "call_type": "I"}], "page": 1, "pages": 1})
    now = datetime.now(UTC)
    bad: list = []
    with structlog.testing.capture_logs() as logs:
        calls = list(make_client(scripted.url).call_log(now - timedelta(hours=1), now,
                                                        on_unreadable=lambda *u: bad.append(u)))
    assert [c.session_id for c in calls] == ["906"]
    assert [(sid, raw["session_id"]) for sid, _, raw in bad] == [("904", 904), ("905", 905)]
    assert all(reason for _, reason, _ in bad)
    assert not [e for e in logs if e["event"] == "okitoki.record_skipped"]


def test_call_log_windows_round_outwards_to_whole_seconds(scripted) -> None:
    scripted.default = Answer(200, {"calls": [], "page": 1, "pages": 1})
    start = datetime(2024, 1, 15, 10, 0, 0, 700000, tzinfo=UTC)
    list(make_client(scripted.url).call_log(start, start + timedelta(seconds=5)))
    sent = scripted.arrivals[0].variables()
    assert sent["date_from"] == "15.01.2024 12:00:00" and sent["date_to"] == "15.01.2024 12:00:06"


def test_paging_stops_on_an_empty_page_even_if_more_pages_were_announced(scripted) -> None:
    scripted.answer(Answer(200, {"contacts": [{"id": 1, "name": "A"}], "page": 1, "pages": 5}),
                    Answer(200, {"contacts": [], "page": 2, "pages": 5}))
    contacts = list(make_client(scripted.url).export_contacts(datetime(2024, 1, 1, tzinfo=UTC)))
    assert [c.id for c in contacts] == ["1"] and len(scripted.arrivals) == 2


def test_a_page_size_above_the_endpoint_limit_is_refused(scripted) -> None:
    with pytest.raises(ValueError, match="per_page must be 1..1000"):
        next(make_client(scripted.url).export_contacts(datetime(2024, 1, 1, tzinfo=UTC), per_page=5000))


def test_an_exported_contact_marked_deleted_reads_as_deleted() -> None:
    raw = {"id": 9, "name": "Gone", "phones": ["380671110001"], "details": {},
           "updated_at": "01.12.2026 10:00:00"}
    assert contact_from_raw({**raw, "deleted": True}, KYIV).deleted
    assert not contact_from_raw(raw, KYIV).deleted


def test_an_unreadable_exported_contact_is_handed_over_and_the_export_goes_on(scripted) -> None:
    """The engine quarantines what it is handed: id, reason and the raw entry."""
    scripted.default = Answer(200, {"contacts": [
        {"id": 1, "name": "A", "updated_at": "not a date"}, {"name": "no id"},
        {"id": 3, "name": "C", "phones": ["380671110003"], "updated_at": "01.12.2026 10:00:00"}],
        "page": 1, "pages": 1})
    bad: list = []
    contacts = list(make_client(scripted.url).export_contacts(datetime(2024, 1, 1, tzinfo=UTC),
                                                              on_unreadable=bad.append))
    assert [c.id for c in contacts] == ["3"]
    assert [u.id for u in bad] == ["1", None]
    assert all(u.reason.startswith("unreadable Oki-Toki contact") and u.raw for u in bad)


def test_unknown_fields_of_an_exported_contact_and_a_call_are_kept_in_their_raw_data(scripted) -> None:
    """Parsing is tolerant: what the profile does not map stays with the record (issue 13)."""
    scripted.default = Answer(200, {"contacts": [
        {"id": 3, "name": "C", "phones": ["380671110003"], "updated_at": "01.12.2026 10:00:00",
         "company": "Acme", "source": {"channel": "web"}}], "page": 1, "pages": 1})
    [contact] = list(make_client(scripted.url).export_contacts(datetime(2024, 1, 1, tzinfo=UTC)))
    assert contact.raw["company"] == "Acme" and contact.raw["source"] == {"channel": "web"}
    assert "company" not in contact.fields            # unmapped: kept, not synced
    assert contact == contact_from_raw({"id": 3, "name": "C", "phones": ["380671110003"],
                                        "updated_at": "01.12.2026 10:00:00"}, KYIV)  # raw is not compared
    call = call_from_raw({**RAW, "call_type": "I", "queue_id": 12, "survey": {"score": 5}}, KYIV)
    assert call.details["queue_id"] == 12 and call.details["survey"] == {"score": 5}
