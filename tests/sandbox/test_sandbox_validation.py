"""The sandbox refuses what Oki-Toki documents as wrong, with the documented status codes."""

from __future__ import annotations

import json

import httpx

from .conftest import api

PHONE = "380501234567"


def test_six_phones_are_refused_with_422(sandbox):
    phones = ",".join(f"38050123456{i}" for i in range(6))
    r = api(sandbox, "dialers/create_task", dialer_id=101, phones=phones)
    assert r.status_code == 422
    body = r.json()
    assert body["result"] == "error"
    assert "at most 5" in body["errors"]["phones"][0]


def test_five_phones_as_json_array_inside_json_request_are_accepted(sandbox):
    inner = {"api_token": sandbox.token, "dialer_id": 101,
             "phones": [f"38050123456{i}" for i in range(5)]}
    r = httpx.post(f"{sandbox.api_url}/dialers/create_task", data={"json_request": json.dumps(inner)})
    assert r.status_code == 200, r.text
    task_id = r.json()["task_id"]
    [task] = [t for t in sandbox.state()["tasks"] if t["id"] == task_id]
    assert len(task["phones"]) == 5


def test_json_request_works_in_a_get_query_too(sandbox):
    inner = json.dumps({"api_token": sandbox.token, "dialer_id": 101, "phones": [PHONE]})
    r = httpx.get(f"{sandbox.api_url}/dialers/create_task", params={"json_request": inner})
    assert r.status_code == 200 and r.json()["result"] == "success"


def test_a_json_body_is_read_like_a_form(sandbox):
    r = api(sandbox, "dialers/create_task", json_body={"dialer_id": 101, "phones": PHONE,
                                                        "details": {"name": "John", "order": "12"}})
    assert r.status_code == 200, r.text
    [task] = sandbox.state()["tasks"]
    assert task["details"] == {"name": "John", "order": "12"}


def test_details_may_be_a_json_string_of_an_object(sandbox):
    r = api(sandbox, "dialers/create_task", dialer_id=101, phones=PHONE, details='{"name": "Ann"}')
    assert r.status_code == 200
    r = api(sandbox, "dialers/create_task", dialer_id=102, phones=PHONE, details='["not", "object"]')
    assert r.status_code == 422 and "details" in r.json()["errors"]


def test_bad_date_format_is_refused_with_422(sandbox):
    r = api(sandbox, "dialers/create_task", dialer_id=101, phones=PHONE, date="2026-03-29 10:00")
    assert r.status_code == 422
    assert "dd.mm.yyyy hh:mm:ss" in r.json()["errors"]["date"][0]


def test_date_in_the_accounts_time_zone_is_stored_as_the_right_instant(sandbox):
    r = api(sandbox, "dialers/create_task", dialer_id=101, phones=PHONE, date="29.03.2026 10:00:00")
    assert r.status_code == 200
    [task] = sandbox.state()["tasks"]
    assert task["date"] == 1774767600  # 10:00 EEST (UTC+3) = 07:00 UTC, after the DST change


def test_priority_ttl_and_region_are_checked(sandbox):
    r = api(sandbox, "dialers/create_task", dialer_id=101, phones=PHONE, priority=3, ttl=0,
            region="Mars/Olympus")
    assert r.status_code == 422
    assert set(r.json()["errors"]) == {"priority", "ttl", "region"}
    ok = api(sandbox, "dialers/create_task", dialer_id=101, phones=PHONE, priority=2, ttl=3600,
             region="Europe/Kiev")
    assert ok.status_code == 200


def test_empty_region_is_accepted_and_kept_empty(sandbox):
    assert api(sandbox, "dialers/create_task", dialer_id=101, phones=PHONE, region="").status_code == 200
    assert sandbox.state()["tasks"][0]["region"] == ""


def test_missing_required_variables_are_named(sandbox):
    r = api(sandbox, "dialers/create_task")
    assert r.status_code == 422
    assert set(r.json()["errors"]) == {"dialer_id", "phones"}


def test_wrong_method_is_405(sandbox):
    assert api(sandbox, "imports/tasks/add", "GET").status_code == 405
    r = api(sandbox, "contacts/export", "POST")
    assert r.status_code == 405 and r.headers["allow"] == "GET"
    assert r.json()["result"] == "error"


def test_unknown_path_is_404_with_the_error_body(sandbox):
    r = api(sandbox, "dialers/no_such_thing")
    assert r.status_code == 404 and r.json()["result"] == "error"


def test_missing_or_unknown_token_is_401(sandbox):
    assert api(sandbox, "dialers/stat", "GET", token="").status_code == 401
    r = api(sandbox, "dialers/stat", "GET", token="not-a-token")
    assert r.status_code == 401
    assert "token wrong, or the object does not exist" in r.json()["message"]


def test_a_company_token_never_sees_another_companys_objects(sandbox):
    sandbox.seed(companies=[{"id": 2, "name": "Other", "users": [{"name": "B", "token": "other-token-1"}],
                             "dialers": [{"id": 201, "name": "Theirs"}], "lists": [{"id": 20, "name": "BL"}]}])
    mine = api(sandbox, "dialers/create_task", dialer_id=201, phones=PHONE)
    assert mine.status_code == 401
    assert api(sandbox, "lists/check", "GET", list_id=20, value=PHONE).status_code == 401
    theirs = api(sandbox, "dialers/stat", "GET", token="other-token-1")
    assert list(theirs.json()) == ["201"]
    assert api(sandbox, "dialers/create_task", token="other-token-1", dialer_id=101,
               phones=PHONE).status_code == 401


def test_uniqueness_refuses_a_duplicate_phone_unless_force_create(sandbox):
    assert api(sandbox, "dialers/create_task", dialer_id=101, phones=PHONE).status_code == 200
    dup = api(sandbox, "dialers/create_task", dialer_id=101, phones=f"+{PHONE}")
    assert dup.status_code == 422 and "force_create" in dup.json()["errors"]["phones"][0]
    forced = api(sandbox, "dialers/create_task", dialer_id=101, phones=PHONE, force_create=1)
    assert forced.status_code == 200
    # dialer 102 has uniqueness off
    assert api(sandbox, "dialers/create_task", dialer_id=102, phones=PHONE).status_code == 200
    assert api(sandbox, "dialers/create_task", dialer_id=102, phones=PHONE).status_code == 200


def test_a_deleted_task_frees_its_phone(sandbox):
    task_id = api(sandbox, "dialers/create_task", dialer_id=101, phones=PHONE).json()["task_id"]
    r = api(sandbox, "dialers/delete_task", dialer_id=101, task_id=task_id)
    assert r.json() == {"result": "success", "deleted": 1}
    assert api(sandbox, "dialers/delete_task", dialer_id=101, task_id=task_id).json()["deleted"] == 0
    assert api(sandbox, "dialers/create_task", dialer_id=101, phones=PHONE).status_code == 200
    assert api(sandbox, "dialers/delete_task", dialer_id=101, phones=PHONE).json()["deleted"] == 1


def test_bulk_add_of_1000_tasks_in_one_request(sandbox):
    tasks = [{"phones": f"38067{i:07d}", "details": {"n": i}} for i in range(1000)]
    r = api(sandbox, "imports/tasks/add", json_body={"dialer_id": 101, "tasks": tasks})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["result"] == "success" and len(body["task_ids"]) == 1000
    assert len(set(body["task_ids"])) == 1000
    assert sandbox.requests()["by_operation"] == {"imports/tasks/add": 1}


def test_bulk_add_as_form_with_tasks_as_a_json_string(sandbox):
    tasks = json.dumps([{"phones": [PHONE]}, {"dialer_id": 102, "phones": "380671112233"}])
    r = api(sandbox, "imports/tasks/add", dialer_id=101, tasks=tasks)
    assert r.status_code == 200, r.text
    assert [t["dialer_id"] for t in sandbox.state()["tasks"]] == [101, 102]


def test_bulk_add_over_1000_or_with_one_bad_task_creates_nothing(sandbox):
    too_many = [{"phones": f"38067{i:07d}"} for i in range(1001)]
    assert api(sandbox, "imports/tasks/add", json_body={"dialer_id": 101, "tasks": too_many}).status_code == 422
    mixed = [{"phones": PHONE}, {"phones": "1,2,3,4,5,6"}, {"phones": PHONE}]
    r = api(sandbox, "imports/tasks/add", json_body={"dialer_id": 101, "tasks": mixed})
    assert r.status_code == 422
    assert "tasks.1.phones" in r.json()["errors"]
    dup = api(sandbox, "imports/tasks/add", json_body={"dialer_id": 101, "tasks": [{"phones": PHONE}] * 2})
    assert dup.status_code == 422 and "tasks.1.phones" in dup.json()["errors"]
    assert sandbox.state()["tasks"] == []


def test_lists_add_check_remove(sandbox):
    assert api(sandbox, "lists/add", list_id=7, values=f"{PHONE},380671112233").json()["added"] == 2
    assert api(sandbox, "lists/add", "GET", list_id=7, values=PHONE).json()["added"] == 0
    assert api(sandbox, "lists/check", "GET", list_id=7, value=PHONE).json() == {"exists": True}
    assert api(sandbox, "lists/remove", list_id=7, values=PHONE).json()["removed"] == 1
    assert api(sandbox, "lists/check", "GET", list_id=7, value=PHONE).json() == {"exists": False}


def test_dialer_stat_has_the_documented_shape(sandbox):
    body = api(sandbox, "dialers/stat", "GET", dialer_id=101).json()
    dialer = body["101"]
    assert {"id", "name", "status_id", "status_ru", "status_eng", "state", "operators"} <= set(dialer)
    assert dialer["status_id"] == "no_phones" and dialer["state"] == "enabled"
    assert dialer["operators"][0]["status_id"] == "offline"


def test_json_request_that_is_not_an_object_is_422(sandbox):
    r = httpx.post(f"{sandbox.api_url}/dialers/create_task", data={"json_request": "[1, 2"})
    assert r.status_code == 422 and "json_request" in r.json()["errors"]
    r = httpx.post(f"{sandbox.api_url}/dialers/create_task", content=b"{not json",
                   headers={"content-type": "application/json"})
    assert r.status_code == 422 and r.json()["errors"] == {"body": ["invalid JSON"]}
