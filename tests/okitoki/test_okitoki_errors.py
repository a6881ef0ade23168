"""Every way Oki-Toki can fail becomes one typed error naming the operation and status,
with a hint where a person must act, and never the API token."""

from __future__ import annotations

from datetime import timedelta

import pytest

from syncd.errors import (
    AuthenticationError,
    InvalidRecord,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    PermissionDenied,
    Throttled,
    TransientError,
)
from syncd.model import TaskSpec

from .conftest import TOKEN, make_client
from .scripted import Answer

HTML = "<!DOCTYPE html><html><body><h1>502 Bad Gateway</h1>nginx</body></html>"
ECHO = {"result": "error", "message": f"token {TOKEN} is not valid"}

CASES = [
    # (answer, error class, status, text the message must contain)
    (Answer(401, ECHO), AuthenticationError, 401, "api_token is wrong, or the object"),
    (Answer(403, {"result": "error", "message": "Access denied"}), PermissionDenied, 403,
     '"Manage users" right, and "Manage external resources, integrations and events"'),
    (Answer(404, "<html><body>Not Found</body></html>", {"Content-Type": "text/html"}), NotFound,
     404, "[okitoki.endpoints] dialers"),
    (Answer(405, {"result": "error", "message": "Method Not Allowed"}), MethodNotAllowed, 405,
     "Method Not Allowed"),
    (Answer(422, {"result": "error", "message": "validation failed",
                  "errors": {"phones": ["at most 5 numbers"], "date": ["bad format"]}}),
     InvalidRequest, 422, "phones: at most 5 numbers; date: bad format"),
    (Answer(400, {"message": "dialer_id is required"}), InvalidRequest, 400, "dialer_id is required"),
    (Answer(429, {"result": "error", "message": "Too many requests"}, {"Retry-After": "3"}),
     Throttled, 429, "Too many requests"),
    (Answer(500, {"result": "error", "message": "Internal error"}), TransientError, 500, "Internal error"),
    (Answer(502, HTML, {"Content-Type": "text/html"}), TransientError, 502,
     "Bad Gateway; the body is an HTML page instead of JSON"),
    (Answer(200, {"error": "Access denied", "code": 403}), PermissionDenied, 200,
     "error in a 200 answer: Access denied"),
    (Answer(200, {"result": "error", "message": "bad task", "errors": {"dialer_id": ["unknown"]}}),
     InvalidRequest, 200, "error in a 200 answer: bad task [dialer_id: unknown]"),
    (Answer(200, {"error": "internal error, try again later"}), TransientError, 200,
     "error in a 200 answer: internal error, try again later"),
    (Answer(200, {"error": {"code": 401, "message": f"bad token {TOKEN}"}}), AuthenticationError,
     200, "error in a 200 answer: bad token ***"),
    (Answer(200, "OK", {"Content-Type": "text/plain"}), TransientError, 200,
     "malformed response: not JSON"),
    (Answer(200, HTML, {"Content-Type": "text/html"}), TransientError, 200,
     "malformed response: an HTML page instead of JSON"),
    (Answer(200, '{"5": {"id": 5, "name": "Sales", "operators": [{"id": 1'), TransientError, 200,
     "malformed response: truncated JSON"),
    (Answer(200, b""), TransientError, 200, "malformed response: empty body"),
]


@pytest.mark.parametrize("answer,cls,status,text", CASES,
                         ids=[f"{c[0].status}-{c[1].__name__}-{i}" for i, c in enumerate(CASES)])
@pytest.mark.parametrize("form", ["plain", "json_request"])
def test_each_failure_becomes_its_typed_error(scripted, form, answer, cls, status, text) -> None:
    scripted.default = answer
    client = make_client(scripted.url, form=form)
    with pytest.raises(cls) as info:
        client.dialers()
    error = info.value
    message = str(error)
    assert type(error) is cls
    assert error.status == status and error.operation == "dialers" and error.system == "okitoki"
    assert message.startswith(f"okitoki dialers (HTTP {status}): ")
    assert text in message
    assert TOKEN not in message and TOKEN not in repr(error.__dict__)


def test_throttled_carries_the_delay_the_server_asked_for(scripted) -> None:
    scripted.default = Answer(429, {"result": "error", "message": "slow down"}, {"Retry-After": "3"})
    with pytest.raises(Throttled) as info:
        make_client(scripted.url).dialers()
    assert info.value.retry_after == timedelta(seconds=3)


def test_field_errors_are_kept_structured(scripted) -> None:
    scripted.default = Answer(422, {"result": "error", "message": "bad",
                                    "errors": {"phones": "too many"}})
    with pytest.raises(InvalidRequest) as info:
        make_client(scripted.url).create_task(TaskSpec(dialer_id="1", phones=("+380501112233",)))
    assert info.value.field_errors == {"phones": ["too many"]}


def test_a_success_body_without_the_promised_id_is_a_malformed_response(scripted) -> None:
    scripted.default = Answer(200, {"result": "success"})
    with pytest.raises(TransientError, match='okitoki create_task .*no "task_id"'):
        make_client(scripted.url).create_task(TaskSpec(dialer_id="1", phones=("+380501112233",)))


@pytest.mark.parametrize("phones,reason", [
    (tuple(f"+38050111223{i}" for i in range(6)), "at most 5 phone numbers, got 6"),
    ((), "at least one phone number"),
])
def test_a_task_with_a_bad_number_of_phones_is_refused_before_sending(scripted, phones, reason) -> None:
    client = make_client(scripted.url)
    with pytest.raises(InvalidRecord, match=reason):
        client.create_task(TaskSpec(dialer_id="1", phones=phones, contact_id="42"))
    with pytest.raises(InvalidRecord, match=reason):
        client.add_tasks("1", [TaskSpec(dialer_id="1", phones=("+380501112233",)),
                               TaskSpec(dialer_id="1", phones=phones)])
    assert scripted.arrivals == []


def test_more_than_a_thousand_tasks_in_one_bulk_request_is_refused(scripted) -> None:
    specs = [TaskSpec(dialer_id="1", phones=(f"+38050{i:07d}",)) for i in range(1001)]
    with pytest.raises(ValueError, match="at most 1000 tasks"):
        make_client(scripted.url).add_tasks("1", specs)
    assert scripted.arrivals == []


def test_a_contact_field_oki_toki_does_not_have_is_an_invalid_record(scripted) -> None:
    from syncd.model import ContactWrite
    with pytest.raises(InvalidRecord, match='no field "status"'):
        make_client(scripted.url).upsert_contact(ContactWrite(key="k1", id=None, fields={"status": "new"}))
    assert scripted.arrivals == []


def test_a_redirect_means_a_wrong_base_url(scripted) -> None:
    scripted.default = Answer(301, b"", {"Location": "https://acme.oki-toki.net/api/v1/dialers/stat"})
    with pytest.raises(NotFound, match=r"HTTP 301\): redirected to https://acme.*check \[okitoki\] url"):
        make_client(scripted.url, attempts=3).dialers()
    assert len(scripted.arrivals) == 1


@pytest.mark.parametrize("answer", [Answer(502, HTML, {"Content-Type": "text/html"}),
                                    Answer(200, '{"result": "success", "task_id": 1')])
def test_a_create_whose_outcome_is_unknown_is_not_sent_twice(scripted, answer) -> None:
    scripted.default = answer
    client = make_client(scripted.url, attempts=4)
    with pytest.raises(TransientError):
        client.create_task(TaskSpec(dialer_id="1", phones=("+380501112233",)))
    with pytest.raises(TransientError):
        client.add_tasks("1", [TaskSpec(dialer_id="1", phones=("+380501112233",))])
    from syncd.model import ContactWrite
    with pytest.raises(TransientError):
        client.upsert_contact(ContactWrite(key="k", id=None, fields={"name": "Ann"}))
    assert len(scripted.arrivals) == 3                  # one each, no blind retry
    with pytest.raises(TransientError):                 # an update is safe to repeat
        client.upsert_contact(ContactWrite(key="k", id="5", fields={"name": "Ann"}))
    assert len(scripted.arrivals) == 3 + 4


def test_a_throttled_create_is_retried_after_the_delay(scripted) -> None:
    scripted.answer(Answer(429, {"message": "slow"}, {"Retry-After": "0"}),
                    Answer(200, {"result": "success", "task_id": 31}))
    client = make_client(scripted.url, attempts=3)
    assert client.create_task(TaskSpec(dialer_id="1", phones=("+380501112233",))) == "31"


def test_an_answer_is_read_as_utf8_unless_it_names_its_charset():
    """JSON is UTF-8 unless the Content-Type says otherwise; a charset it names is honoured."""
    import json

    import httpx

    from syncd.okitoki.parse import body_of, make_check

    record = {"result": "success", "name": "Ірина Шевченко"}
    text = json.dumps(record, ensure_ascii=False)
    answers = [httpx.Response(200, content=text.encode(), headers={"Content-Type": "application/json"}),
               httpx.Response(200, content=text.encode()),
               httpx.Response(200, content=text.encode("cp1251"),
                              headers={"Content-Type": "application/json; Charset=windows-1251"})]
    check = make_check()
    for response in answers:
        check(response, "contacts/export")
        assert body_of(response) == record
