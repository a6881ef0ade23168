"""The fake Bitrix24 portal reproduces the documented behaviour the connector relies on.

Sources: https://apidocs.bitrix24.com/api-reference/crm/contacts/crm-contact-list.html,
https://apidocs.bitrix24.com/api-reference/how-to-call-rest-api/batch.html,
https://apidocs.bitrix24.com/limits.html (503 QUERY_LIMIT_EXCEEDED, operating time),
https://dev.1c-bitrix.ru/rest_help/scope_telephony/telephony/telephony_externalcall_register.php,
https://apidocs.bitrix24.com/api-reference/crm/universal/crm-multifield.html (PHONE by ID).
"""

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.fakes.bitrix24 import parse_php_query, running_bitrix24


@pytest.fixture
def fake():
    with running_bitrix24() as fake:
        yield fake


def call(fake, method, payload=None):
    return httpx.post(fake.webhook_url + method + ".json", json=payload or {})


def test_webhook_with_a_wrong_secret_is_401_no_auth_found(fake):
    r = httpx.post(f"{fake.url}/rest/1/wrongsecret/scope.json")
    assert r.status_code == 401 and r.json()["error"] == "NO_AUTH_FOUND"


def test_list_omits_phone_unless_selected_and_pages_by_start(fake):
    for i in range(60):
        fake.state.add_contact(("+380501110000",), NAME=f"n{i}")
    page = call(fake, "crm.contact.list", {"select": ["*"]}).json()
    assert len(page["result"]) == 50 and page["next"] == 50 and page["total"] == 60
    assert "PHONE" not in page["result"][0]
    page2 = call(fake, "crm.contact.list", {"select": ["ID", "PHONE"], "start": 50}).json()
    assert len(page2["result"]) == 10 and "next" not in page2
    assert page2["result"][0]["PHONE"][0]["VALUE"] == "+380501110000"


def test_start_minus_one_gives_no_count_and_keyset_filters_work(fake):
    base = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(5):
        fake.state.add_contact(modified=base)
    r = call(fake, "crm.contact.list", {"filter": {"=DATE_MODIFY": base.isoformat(), ">ID": 3},
                                        "order": {"ID": "ASC"}, "start": -1}).json()
    assert [c["ID"] for c in r["result"]] == ["4", "5"] and "total" not in r


def test_date_modify_is_rendered_in_the_portal_zone(fake):
    fake.state.add_contact(modified=datetime(2026, 1, 1, 12, tzinfo=UTC))
    row = call(fake, "crm.contact.list", {}).json()["result"][0]
    assert row["DATE_MODIFY"] == "2026-01-01T15:00:00+03:00"


def test_phone_without_id_is_appended_with_id_replaced_and_empty_value_deletes(fake):
    cid = fake.state.add_contact(("+380501111111",))
    call(fake, "crm.contact.update", {"id": cid, "fields": {"PHONE": [{"VALUE": "+380501111111"}]}})
    assert fake.state.phones_of(cid) == ["+380501111111", "+380501111111"]
    first, second = (p["ID"] for p in fake.state.contacts[cid]["PHONE"])
    call(fake, "crm.contact.update", {"id": cid, "fields": {"PHONE": [
        {"ID": first, "VALUE": "+380502222222"}, {"ID": second, "VALUE": ""}]}})
    assert fake.state.phones_of(cid) == ["+380502222222"]


def test_batch_runs_query_string_commands_and_reports_errors_per_command(fake):
    cid = fake.state.add_contact()
    r = call(fake, "batch", {"halt": 0, "cmd": {
        "a": f"crm.contact.update?id={cid}&fields[NAME]=Ann",
        "b": "crm.contact.update?id=999&fields[NAME]=Bob",
        "c": "crm.contact.add?fields[NAME]=Cid&fields[PHONE][0][VALUE]=%2B380503333333"}}).json()
    result = r["result"]
    assert result["result"]["a"] is True and "b" in result["result_error"]
    assert fake.state.contacts[cid]["NAME"] == "Ann"
    assert fake.state.phones_of(int(result["result"]["c"])) == ["+380503333333"]


def test_batch_over_50_commands_is_refused(fake):
    r = call(fake, "batch", {"cmd": {f"c{i}": "scope" for i in range(51)}})
    assert r.status_code == 400 and r.json()["error"] == "ERROR_BATCH_LENGTH_EXCEEDED"


def test_leaky_bucket_answers_503_query_limit_exceeded():
    with running_bitrix24(bucket_size=3, drain_per_s=0.001) as fake:
        codes = [call(fake, "scope").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 503]
        assert call(fake, "scope").json()["error"] == "QUERY_LIMIT_EXCEEDED"


def test_operating_time_blocks_a_method():
    with running_bitrix24() as fake:
        fake.state.block_method("crm.contact.list")
        r = call(fake, "crm.contact.list")
        assert r.status_code == 503 and r.json()["error"] == "OPERATION_TIME_LIMIT"
        assert call(fake, "scope").status_code == 200


def test_register_with_same_parameters_within_30_minutes_gives_the_same_call_id():
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    with running_bitrix24(clock=lambda: clock[0]) as fake:
        params = {"USER_ID": 1, "PHONE_NUMBER": "+380501111111", "TYPE": 2,
                  "CALL_START_DATE": "2026-01-01T10:00:00+00:00"}
        first = call(fake, "telephony.externalcall.register", params).json()["result"]["CALL_ID"]
        clock[0] += timedelta(minutes=29)
        assert call(fake, "telephony.externalcall.register", params).json()["result"]["CALL_ID"] == first
        clock[0] += timedelta(minutes=2)
        assert call(fake, "telephony.externalcall.register", params).json()["result"]["CALL_ID"] != first


def test_missing_telephony_scope_is_insufficient_scope():
    with running_bitrix24(scopes={"crm"}) as fake:
        r = call(fake, "telephony.externalcall.register", {"USER_ID": 1})
        assert r.status_code == 401 and r.json()["error"] == "insufficient_scope"


def test_oauth_refresh_token_rotates_and_expired_access_is_refused(fake):
    s = fake.state
    refresh = s.new_refresh_token()
    q = {"grant_type": "refresh_token", "client_id": s.client_id, "client_secret": s.client_secret,
         "refresh_token": refresh}
    pair = httpx.get(fake.url + "/oauth/token/", params=q).json()
    assert httpx.get(fake.url + "/oauth/token/", params=q).json()["error"] == "invalid_grant"
    ok = httpx.post(fake.url + "/rest/scope.json", params={"auth": pair["access_token"]})
    assert ok.status_code == 200
    s.expire_access_tokens()
    r = httpx.post(fake.url + "/rest/scope.json", params={"auth": pair["access_token"]})
    assert r.status_code == 401 and r.json()["error"] == "expired_token"


def test_php_query_parsing():
    assert parse_php_query("a[b][0][c]=1&a[b][1][c]=&x=y") == {
        "a": {"b": {"0": {"c": "1"}, "1": {"c": ""}}}, "x": "y"}
