"""Every client operation against the sandbox over real loopback HTTP, in both variable forms."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from syncd.errors import AuthenticationError, InvalidRequest
from syncd.model import CallDirection, CallOutcome, ContactWrite, TaskSpec

from .conftest import OTHER_TOKEN, make_client

FORMS = ["plain", "json_request"]


@pytest.fixture(params=FORMS)
def client(request, okitoki_sandbox):
    c = make_client(okitoki_sandbox.url, form=request.param)
    yield c
    c.close()


def tasks_in(sandbox, dialer_id: int) -> list[dict]:
    return [t for t in sandbox.get("/state")["tasks"]
            if t["dialer_id"] == dialer_id and t["status"] == "pending"]


def test_health_check_and_dialers_with_their_operators(client, okitoki_sandbox) -> None:
    client.health_check()
    dialers = client.dialers()
    assert set(dialers) == {"101", "102"}          # not the other company's 201
    leads = dialers["101"]
    assert leads.name == "New leads" and leads.state == "enabled" and leads.status == "no_phones"
    assert {o.name for o in leads.operators} >= {"API user", "Olha"}
    assert all(o.status == "offline" for o in leads.operators)


def test_a_task_is_created_with_every_option_and_removed_by_id(client, okitoki_sandbox) -> None:
    when = datetime(2030, 3, 31, 1, 30, tzinfo=UTC)      # 04:30 in Kyiv, just after the change
    task_id = client.create_task(TaskSpec(
        dialer_id="101", phones=("+380501112233", "+380672223344"), contact_id=None, priority=2,
        ttl_s=3600, region="Europe/Kyiv", date=when, details={"name": "Ann", "order": "12"}))
    [task] = tasks_in(okitoki_sandbox, 101)
    assert str(task["id"]) == task_id
    assert task["date"] == int(when.timestamp())           # the instant survived the zone trip
    assert task["priority"] == 2 and task["ttl"] == 3600 and task["region"] == "Europe/Kyiv"
    assert task["details"] == {"name": "Ann", "order": "12"} and len(task["phones"]) == 2
    assert client.remove_task("101", task_id=task_id) == 1
    assert client.remove_task("101", task_id=task_id) == 0
    assert tasks_in(okitoki_sandbox, 101) == []


def test_a_unique_dialer_refuses_a_duplicate_unless_forced(client, okitoki_sandbox) -> None:
    spec = TaskSpec(dialer_id="101", phones=("+380501112233",))
    client.create_task(spec)
    with pytest.raises(InvalidRequest) as info:
        client.create_task(spec)
    assert info.value.status == 422 and "create_task" in str(info.value)
    client.create_task(TaskSpec(dialer_id="101", phones=("+380501112233",), force_create=True))
    assert len(tasks_in(okitoki_sandbox, 101)) == 2


def test_bulk_add_takes_hundreds_of_tasks_in_one_request(client, okitoki_sandbox) -> None:
    specs = [TaskSpec(dialer_id="102", phones=(f"+38050{i:07d}",), priority=i % 3) for i in range(300)]
    ids = client.add_tasks("102", specs)
    assert len(ids) == len(set(ids)) == 300
    assert okitoki_sandbox.requests()["by_operation"] == {"imports/tasks/add": 1}
    assert len(tasks_in(okitoki_sandbox, 102)) == 300
    removed = client.remove_task("102", phones=["+380500000001", "+380500000002"])
    assert removed == 2


def test_list_values_are_added_checked_and_removed(client) -> None:
    assert client.list_add("7", ["+380501112233", "+380672223344"]) == 2
    assert client.list_add("7", ["+380501112233"]) == 0
    assert client.list_check("7", "+380501112233") is True
    assert client.list_remove("7", ["+380501112233"]) == 1
    assert client.list_check("7", "+380501112233") is False
    assert client.list_check("7", "+380672223344") is True


def test_a_contact_is_created_updated_and_exported_with_flattened_details(client) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)
    contact_id = client.upsert_contact(ContactWrite(
        key="crm:1", id=None, phones=("+380501112233",),
        fields={"name": "Ann Bondar", "email": "ann@example.com", "tags": ["vip"],
                "details.city": "Kyiv"}))
    assert client.upsert_contact(ContactWrite(key="crm:1", id=contact_id,
                                              fields={"details.status": "new"})) == contact_id
    [contact] = list(client.export_contacts(before))
    assert contact.id == contact_id
    assert contact.fields == {"name": "Ann Bondar", "email": "ann@example.com", "tags": ["vip"],
                              "details.city": "Kyiv", "details.status": "new"}
    assert contact.phones and contact.phones[0].endswith("501112233")
    assert contact.updated_at is not None and contact.updated_at.tzinfo is UTC
    assert before <= contact.updated_at <= datetime.now(UTC) + timedelta(seconds=1)


def test_export_walks_several_pages_lazily_one_request_per_page(client, okitoki_sandbox) -> None:
    base = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)        # spans the Kyiv DST change (01:00 UTC)
    okitoki_sandbox.post("/seed", {"company_id": 1, "contacts": [
        {"name": f"C{i:02d}", "phones": [f"38050{i:07d}"],
         "updated_at": (base + timedelta(minutes=7 * i)).isoformat()} for i in range(25)]})
    walk = client.export_contacts(base, base + timedelta(hours=3), per_page=10)
    first = next(walk)
    assert okitoki_sandbox.requests()["total"] == 1              # nothing read ahead
    contacts = [first, *walk]
    assert [c.fields["name"] for c in contacts] == [f"C{i:02d}" for i in range(25)]
    assert [c.updated_at for c in contacts] == [base + timedelta(minutes=7 * i) for i in range(25)]
    assert okitoki_sandbox.requests()["total"] == 3


def test_an_export_window_excludes_what_changed_outside_it(client, okitoki_sandbox) -> None:
    base = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    okitoki_sandbox.post("/seed", {"company_id": 1, "contacts": [
        {"name": name, "updated_at": (base + timedelta(hours=h)).isoformat()}
        for name, h in (("early", -1), ("inside", 0), ("late", 2))]})
    names = [c.fields["name"] for c in client.export_contacts(base, base + timedelta(hours=1))]
    assert names == ["inside"]


def simulate(sandbox, **spec) -> dict:
    return sandbox.post("/calls", {"company_id": 1, **spec})  # type: ignore[return-value]


def test_the_call_log_maps_every_kind_of_call(client, okitoki_sandbox) -> None:
    task_id = client.create_task(TaskSpec(dialer_id="101", phones=("+380931234567",)))
    inbound = simulate(okitoki_sandbox, phone="+380501112233", direction="in", outcome="answered",
                       duration=42, user_id=2)
    outbound = simulate(okitoki_sandbox, phone="+380672223344", direction="out", outcome="busy")
    dialer = simulate(okitoki_sandbox, direction="dialer", task_id=int(task_id), outcome="no_answer")
    now = datetime.now(UTC)
    calls = {c.session_id: c for c in client.call_log(now - timedelta(hours=1), now + timedelta(minutes=1))}
    assert set(calls) == {str(inbound["session_id"]), str(outbound["session_id"]),
                          str(dialer["session_id"])}
    i, o, d = (calls[str(x["session_id"])] for x in (inbound, outbound, dialer))
    assert (i.direction, o.direction, d.direction) == (
        CallDirection.INBOUND, CallDirection.OUTBOUND, CallDirection.DIALER)
    assert i.phone.endswith("501112233") and o.phone.endswith("672223344")
    assert d.phone.endswith("931234567") and d.task_id == task_id and d.dialer_id == "101"
    assert (i.outcome, o.outcome, d.outcome) == (
        CallOutcome.ANSWERED, CallOutcome.BUSY, CallOutcome.NO_ANSWER)
    assert i.talk_s == 42 and i.duration_s == inbound["etime"] - inbound["stime"]
    assert i.started_at == datetime.fromtimestamp(inbound["stime"], UTC)
    assert i.agent == "2" and i.recording_url and o.recording_url is None
    assert i.details["session_id"] == inbound["session_id"]


def test_the_call_log_pages_through_a_window(client, okitoki_sandbox) -> None:
    started = [int(time.time()) - 600 + 60 * n for n in range(7)]
    for n, at in enumerate(started):
        simulate(okitoki_sandbox, phone=f"+38050000000{n}", direction="in", started_at=at)
    now = datetime.now(UTC)
    calls = list(client.call_log(now - timedelta(hours=1), now, per_page=3))
    assert [int(c.started_at.timestamp()) for c in calls] == started
    assert okitoki_sandbox.requests()["by_operation"]["calls/log"] == 3


def test_call_data_is_read_and_extended(client, okitoki_sandbox) -> None:
    call = simulate(okitoki_sandbox, phone="+380501112233", direction="in")
    session = str(call["session_id"])
    client.add_call_data(session, {"crm_activity": "A-17", "note": "ок"})
    data = client.call_data(session)
    assert str(data["session_id"]) == session
    assert data["details"]["crm_activity"] == "A-17" and data["details"]["note"] == "ок"


def test_another_companys_token_sees_none_of_our_objects(okitoki_sandbox) -> None:
    theirs = make_client(okitoki_sandbox.url, token=OTHER_TOKEN)
    assert set(theirs.dialers()) == {"201"}
    with pytest.raises(AuthenticationError) as info:
        theirs.create_task(TaskSpec(dialer_id="101", phones=("+380501112233",)))
    assert "object the request names does not exist" in str(info.value)
    assert OTHER_TOKEN not in str(info.value)


def test_an_unknown_token_is_an_authentication_error_with_its_hint(okitoki_sandbox) -> None:
    with pytest.raises(AuthenticationError, match=r"okitoki dialers \(HTTP 401\).*api_token is wrong"):
        make_client(okitoki_sandbox.url, token="no-such-token-1234").health_check()


def test_a_contact_changed_during_an_export_hides_no_other_contact(client, okitoki_sandbox) -> None:
    base = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    ids = okitoki_sandbox.post("/seed", {"company_id": 1, "contacts": [
        {"name": f"C{i:02d}", "updated_at": (base + timedelta(minutes=i)).isoformat()}
        for i in range(25)]})["contacts"]
    walk = client.export_contacts(base, per_page=10)
    names = [next(walk).fields["name"]]
    # Behind our back, between page 1 and page 2: C02 changes and moves to the end.
    okitoki_sandbox.post(f"/contacts/{ids[2]}", {"details": {"status": "won"}})
    names += [c.fields["name"] for c in walk]
    assert set(names) == {f"C{i:02d}" for i in range(25)}
    assert names.count("C02") == 2 and names[-1] == "C02"
