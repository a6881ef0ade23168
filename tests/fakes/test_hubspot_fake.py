"""The fake HubSpot reproduces the documented behaviour the connector relies on (raw HTTP)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx

from tests.fakes._fixtures import module_fake_fixtures
from tests.fakes.hubspot import TOKEN, running_hubspot

AUTH = {"Authorization": f"Bearer {TOKEN}"}
T0 = datetime(2026, 3, 1, tzinfo=UTC)

server, fake = module_fake_fixtures(running_hubspot, AUTH)


def search(fake, **body):
    return fake.client.post("/crm/v3/objects/contacts/search", json=body)


# https://developers.hubspot.com/docs/api/crm/search#limitations
# "The search endpoints are limited to 10,000 total results for any given query. Attempting
# to page past 10,000 results will result in a 400 error."
def test_search_cannot_page_past_the_result_cap(fake):
    fake.search_cap = 3
    for i in range(5):
        fake.add_contact(firstname=f"c{i}")
    first = search(fake, limit=3).json()
    assert first["total"] == 5 and first["paging"]["next"]["after"] == "3"
    refused = search(fake, limit=3, after="3")
    assert refused.status_code == 400 and refused.json()["category"] == "VALIDATION_ERROR"


# https://developers.hubspot.com/docs/api/crm/search#paging-through-results ("limit" max 100)
def test_search_limit_above_100_is_refused(fake):
    assert search(fake, limit=101).status_code == 400


# Search sorts on one property; records that tie on it come back in no promised order.
def test_sort_ties_are_not_in_id_order(fake):
    ids = [int(fake.add_contact(T0, firstname=f"c{i}")) for i in range(12)]
    body = search(fake, limit=100, sorts=[{"propertyName": "lastmodifieddate",
                                           "direction": "ASCENDING"}]).json()
    got = [int(r["id"]) for r in body["results"]]
    assert sorted(got) == ids and got != ids
    two = search(fake, sorts=[{"propertyName": "a"}, {"propertyName": "b"}])
    assert two.status_code == 400


def test_filter_groups_are_or_and_filters_are_and(fake):
    a = fake.add_contact(T0, firstname="a", lastname="x")
    fake.add_contact(T0, firstname="b", lastname="y")
    c = fake.add_contact(T0, firstname="c", lastname="x")
    body = search(fake, filterGroups=[
        {"filters": [{"propertyName": "lastname", "operator": "EQ", "value": "x"},
                     {"propertyName": "hs_object_id", "operator": "GT", "value": a}]},
        {"filters": [{"propertyName": "firstname", "operator": "IN", "values": ["a"]}]}]).json()
    assert sorted(r["id"] for r in body["results"]) == sorted([a, c])


# https://developers.hubspot.com/docs/api/crm/search ("it may take a few moments for newly
# created or updated objects to appear in search results")
def test_new_records_are_searchable_only_after_the_index_delay(fake):
    fake.index_delay = 60
    made = fake.client.post("/crm/v3/objects/contacts/batch/create",
                            json={"inputs": [{"properties": {"firstname": "new"}}]})
    assert made.status_code == 201
    new_id = made.json()["results"][0]["id"]
    assert search(fake).json()["results"] == []
    read = fake.client.post("/crm/v3/objects/contacts/batch/read", json={"inputs": [{"id": new_id}]})
    assert [r["id"] for r in read.json()["results"]] == [new_id]


# https://developers.hubspot.com/docs/api/crm/contacts (batch create: one invalid input makes
# the whole request fail with a VALIDATION_ERROR; nothing is created)
def test_one_invalid_input_fails_the_whole_batch(fake):
    r = fake.client.post("/crm/v3/objects/contacts/batch/create", json={"inputs": [
        {"properties": {"email": "ok@x.io"}}, {"properties": {"email": "broken"}}]})
    assert r.status_code == 400 and r.json()["category"] == "VALIDATION_ERROR"
    assert "broken" in r.json()["message"] and fake.contacts == {}
    too_many = fake.client.post("/crm/v3/objects/contacts/batch/update",
                                json={"inputs": [{"id": "1", "properties": {}}] * 101})
    assert too_many.status_code == 400


# Unique-value properties (hasUniqueValue): a second record with the same value is a 409, and
# batch read accepts the property as idProperty.
def test_unique_key_property_conflicts_and_reads_by_id_property(fake):
    body = {"inputs": [{"properties": {"syncd_key": "k1"}}]}
    first = fake.client.post("/crm/v3/objects/contacts/batch/create", json=body)
    assert fake.client.post("/crm/v3/objects/contacts/batch/create", json=body).status_code == 409
    read = fake.client.post("/crm/v3/objects/contacts/batch/read",
                            json={"idProperty": "syncd_key", "inputs": [{"id": "k1"}]})
    assert read.json()["results"][0]["id"] == first.json()["results"][0]["id"]


# https://developers.hubspot.com/docs/api/usage-details#rate-limits
def test_rate_limits_answer_429_with_headers_and_policy(fake):
    fake.ten_second_limit = 2
    fake.client.get("/crm/v3/objects/contacts")
    fake.client.get("/crm/v3/objects/contacts")
    r = fake.client.get("/crm/v3/objects/contacts")
    assert r.status_code == 429
    assert r.json()["policyName"] == "TEN_SECONDLY_ROLLING" and r.json()["errorType"] == "RATE_LIMIT"
    assert r.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert r.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    fake.ten_second_limit, fake.daily_limit = None, fake.daily_used
    daily = fake.client.get("/crm/v3/objects/contacts")
    assert daily.status_code == 429 and daily.json()["policyName"] == "DAILY"


def test_wrong_token_is_401_invalid_authentication(fake):
    r = httpx.get(fake.url + "/crm/v3/objects/contacts", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["category"] == "INVALID_AUTHENTICATION"


# https://developers.hubspot.com/docs/api/crm/calls (association type 194: call → contact)
def test_call_needs_a_valid_contact_association(fake):
    cid = fake.add_contact(firstname="a")
    props = {"hs_timestamp": "2026-03-01T10:00:00.000Z", "hs_call_status": "COMPLETED"}
    assoc = lambda t: [{"to": {"id": cid}, "types": [{"associationCategory": "HUBSPOT_DEFINED",  # noqa: E731
                                                     "associationTypeId": t}]}]
    assert fake.client.post("/crm/v3/objects/calls", json={"properties": props,
                                                           "associations": assoc(1)}).status_code == 400
    made = fake.client.post("/crm/v3/objects/calls", json={"properties": props, "associations": assoc(194)})
    assert made.status_code == 201 and fake.calls[int(made.json()["id"])].associations == [int(cid)]


# https://developers.hubspot.com/docs/api/oauth/tokens (refresh_token grant, form-encoded)
def test_oauth_refresh_grant(fake):
    fake.grant_refresh_token("r-1")
    form = {"grant_type": "refresh_token", "client_id": fake.client_id,
            "client_secret": fake.client_secret, "refresh_token": "r-1"}
    ok = httpx.post(fake.url + "/oauth/v1/token", data=form)
    assert ok.status_code == 200 and ok.json()["access_token"] in fake.tokens
    again = httpx.post(fake.url + "/oauth/v1/token", data=form)
    assert again.status_code == 400 and again.json()["status"] == "BAD_REFRESH_TOKEN"


# https://knowledge.hubspot.com/properties/hubspots-default-contact-properties
# ("Phone number without country code, calculated": hs_searchable_calculated_phone_number)
def test_calculated_phone_copies_ignore_formatting_and_country_code(fake):
    a = fake.add_contact(phone="+380 (67) 123-45-67")
    b = fake.add_contact(mobilephone="+48 671 234 567")
    body = search(fake, filterGroups=[{"filters": [{"propertyName": "hs_searchable_calculated_phone_number",
                                                    "operator": "EQ", "value": "671234567"}]}]).json()
    assert [r["id"] for r in body["results"]] == [a]
    body = search(fake, filterGroups=[{"filters": [{"propertyName": "hs_searchable_calculated_mobile_number",
                                                    "operator": "EQ", "value": "671234567"}]}]).json()
    assert [r["id"] for r in body["results"]] == [b]
