"""The fake Kommo account reproduces the documented behaviour the connector relies on.

Sources: https://developers.kommo.com/reference/contacts-list (filter, order, 204 when empty),
https://developers.kommo.com/reference/add-contacts and .../edit-contacts (arrays,
validation-errors by request_id), https://developers.kommo.com/reference/add-calls (uniq),
https://developers.kommo.com/docs/oauth-20 (refresh rotates),
https://developers.kommo.com/docs/limits (7 requests/s, 429, 403 when blocked).
"""

import httpx
import pytest

from tests.fakes.kommo import running_kommo


@pytest.fixture
def fake():
    with running_kommo(rate_per_s=1000) as fake:
        yield fake


def api(fake, method, path, token=None, **kw):
    headers = {"Authorization": f"Bearer {token or fake.state.token}"}
    return httpx.request(method, fake.url + path, headers=headers, **kw)


def test_bad_token_is_401_with_a_problem_body(fake):
    r = api(fake, "GET", "/api/v4/account", token="nope")
    assert r.status_code == 401 and r.json()["title"] == "Unauthorized"


def test_updated_at_filter_orders_pages_and_204_when_empty(fake):
    for t in (100, 200, 300):
        fake.state.add_contact("c", updated_at=t)
    r = api(fake, "GET", "/api/v4/contacts", params={"filter[updated_at][from]": 200,
                                                      "order[updated_at]": "asc", "limit": 1})
    body = r.json()
    assert [c["updated_at"] for c in body["_embedded"]["contacts"]] == [200]
    assert "next" in body["_links"]
    r = api(fake, "GET", "/api/v4/contacts", params={"filter[updated_at][from]": 999})
    assert r.status_code == 204 and r.content == b""


def test_the_updated_at_filter_can_be_silently_ignored(fake):
    fake.state.ignore_updated_at_filter = True
    fake.state.add_contact("old", updated_at=100)
    r = api(fake, "GET", "/api/v4/contacts", params={"filter[updated_at][from]": 200})
    assert [c["updated_at"] for c in r.json()["_embedded"]["contacts"]] == [100]


def test_one_invalid_entity_fails_the_whole_array_naming_its_request_id(fake):
    r = api(fake, "POST", "/api/v4/contacts", json=[
        {"name": "ok"}, {"name": "bad", "custom_fields_values": [{"field_id": 42, "values": [{"value": 1}]}]}])
    assert r.status_code == 400
    assert r.json()["validation-errors"][0]["request_id"] == "1"
    assert fake.state.contacts == {}


def test_patch_replaces_multitext_values(fake):
    cid = fake.state.add_contact("a", ("+380501111111", "+380502222222"))
    r = api(fake, "PATCH", "/api/v4/contacts", json=[{"id": cid, "custom_fields_values": [
        {"field_code": "PHONE", "values": [{"value": "+380503333333", "enum_code": "WORK"}]}]}])
    assert r.status_code == 200
    assert fake.state.phones_of(cid) == ["+380503333333"]


def test_calls_find_the_contact_by_phone_and_uniq_guards_repeats(fake):
    cid = fake.state.add_contact("a", ("+38 050 111 11 11",))
    call = {"direction": "inbound", "uniq": "s-1", "duration": 10, "source": "oki-toki",
            "phone": "+380501111111", "call_status": 4}
    first = api(fake, "POST", "/api/v4/calls", json=[call]).json()
    again = api(fake, "POST", "/api/v4/calls", json=[call]).json()
    assert first["_embedded"]["calls"][0]["entity_id"] == cid
    assert again["_embedded"]["calls"][0]["id"] == first["_embedded"]["calls"][0]["id"]
    assert len(fake.state.calls) == 1
    unknown = api(fake, "POST", "/api/v4/calls", json=[{**call, "uniq": "s-2", "phone": "+1555"}]).json()
    assert unknown["errors"][0]["request_id"] == "0"


def test_rate_limit_answers_429_and_a_blocked_account_403():
    with running_kommo(rate_per_s=2) as fake:
        codes = [api(fake, "GET", "/api/v4/account").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        fake.state.blocked = True
        assert api(fake, "GET", "/api/v4/account").status_code == 403


def test_oauth_refresh_rotates(fake):
    s = fake.state
    body = {"client_id": s.client_id, "client_secret": s.client_secret, "grant_type": "refresh_token",
            "refresh_token": s.new_refresh_token(), "redirect_uri": "https://example.com"}
    pair = httpx.post(fake.url + "/oauth2/access_token", json=body).json()
    assert httpx.post(fake.url + "/oauth2/access_token", json=body).status_code == 400
    assert api(fake, "GET", "/api/v4/account", token=pair["access_token"]).status_code == 200
