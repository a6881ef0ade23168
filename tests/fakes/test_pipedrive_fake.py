"""The fake Pipedrive reproduces the documented behaviour the connector relies on (raw HTTP)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import httpx

from tests.fakes._fixtures import module_fake_fixtures
from tests.fakes.pipedrive import API_TOKEN, running_pipedrive

T0 = datetime(2026, 3, 1, tzinfo=UTC)

server, fake = module_fake_fixtures(running_pipedrive, {"x-api-token": API_TOKEN})


# https://developers.pipedrive.com/docs/api/v1/Persons#getPersons (v2: cursor, limit ≤ 500,
# updated_since RFC 3339 inclusive, additional_data.next_cursor null on the last page)
def test_cursor_paging_ends_with_null_next_cursor(fake):
    for i in range(5):
        fake.add_person(f"p{i}", updated_at=T0 + timedelta(seconds=i))
    params = {"sort_by": "update_time", "sort_direction": "asc", "limit": 2,
              "updated_since": "2026-03-01T00:00:01Z"}
    seen, cursor = [], None
    while True:
        body = fake.client.get("/api/v2/persons", params={**params, **({"cursor": cursor} if cursor else {})}).json()
        seen += [p["name"] for p in body["data"]]
        cursor = body["additional_data"]["next_cursor"]
        if cursor is None:
            break
    assert seen == ["p1", "p2", "p3", "p4"]
    assert fake.client.get("/api/v2/persons", params={"limit": 501}).status_code == 400


def test_update_time_has_second_resolution_and_ties_are_unordered(fake):
    ids = [int(fake.add_person(f"p{i}", updated_at=T0 + timedelta(microseconds=i))) for i in range(10)]
    body = fake.client.get("/api/v2/persons", params={"sort_by": "update_time", "limit": 500}).json()
    assert {p["update_time"] for p in body["data"]} == {"2026-03-01T00:00:00Z"}
    got = [p["id"] for p in body["data"]]
    assert sorted(got) == ids and got != ids


def test_ids_filter_reads_persons_by_id(fake):
    a, _, c = (fake.add_person(n) for n in "abc")
    body = fake.client.get("/api/v2/persons", params={"ids": f"{a},{c}"}).json()
    assert sorted(str(p["id"]) for p in body["data"]) == sorted([a, c])


# PATCH /api/v2/persons/{id}: "phones" replaces the whole list
def test_patch_replaces_the_phone_list(fake):
    pid = fake.add_person("a", ["+1 555 0100", "+1 555 0101"])
    r = fake.client.patch(f"/api/v2/persons/{pid}", json={"phones": [{"value": "+1 555 0102",
                                                                       "primary": True}]})
    assert r.status_code == 200 and [p["value"] for p in r.json()["data"]["phones"]] == ["+1 555 0102"]
    assert fake.client.patch("/api/v2/persons/999", json={}).json()["error"] == "Person not found"
    refused = fake.client.post("/api/v2/persons", json={"phones": []})
    assert refused.status_code == 400 and refused.json()["success"] is False


# https://developers.pipedrive.com/docs/api/v1/CallLogs#addCallLog
def test_call_log_needs_outcome_phone_and_utc_times(fake):
    good = {"outcome": "connected", "to_phone_number": "+15550100",
            "start_time": "2026-03-01 10:00:00", "end_time": "2026-03-01 10:01:00"}
    assert fake.client.post("/v1/callLogs", json=good).json()["success"] is True
    assert fake.client.post("/v1/callLogs", json={**good, "outcome": "answered"}).status_code == 400
    assert fake.client.post("/v1/callLogs", json={**good, "start_time": "2026-03-01T10:00:00Z"}).status_code == 400
    listed = fake.client.get("/v1/callLogs", params={"limit": 50}).json()
    assert len(listed["data"]) == 1 and listed["additional_data"]["pagination"]["more_items_in_collection"] is False


# https://pipedrive.readme.io/docs/core-api-concepts-rate-limiting
def test_burst_limit_and_daily_token_budget_answer_429(fake):
    fake.burst_limit = 1
    assert fake.client.get("/v1/users/me").status_code == 200
    burst = fake.client.get("/v1/users/me")
    assert burst.status_code == 429 and burst.headers["x-ratelimit-remaining"] == "0"
    assert burst.json()["error"] == "Request over limit"
    fake.burst_limit, fake.daily_budget = None, fake.tokens_used + 10
    call = {"outcome": "busy", "to_phone_number": "1", "start_time": "2026-03-01 10:00:00",
            "end_time": "2026-03-01 10:00:05"}
    assert fake.client.post("/v1/callLogs", json=call).status_code == 200   # costs 10 tokens
    spent = fake.client.get("/v1/users/me")
    assert spent.status_code == 429 and "budget" in spent.json()["error"]


def test_wrong_token_is_401_unauthorized_access(fake):
    r = httpx.get(fake.url + "/v1/users/me", params={"api_token": "nope"})
    assert r.status_code == 401 and r.json() == {**r.json(), "success": False, "error": "unauthorized access"}


# https://pipedrive.readme.io/docs/marketplace-oauth-authorization (refresh rotates the token)
def test_oauth_refresh_rotates(fake):
    fake.grant_refresh_token("r-1")
    basic = base64.b64encode(f"{fake.client_id}:{fake.client_secret}".encode()).decode()
    form = {"grant_type": "refresh_token", "refresh_token": "r-1"}
    ok = httpx.post(fake.url + "/oauth/token", data=form, headers={"Authorization": f"Basic {basic}"})
    assert ok.status_code == 200 and ok.json()["refresh_token"] != "r-1"
    again = httpx.post(fake.url + "/oauth/token", data=form, headers={"Authorization": f"Basic {basic}"})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
