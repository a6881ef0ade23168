"""Tryton connector: error mapping and request shapes (httpx.MockTransport; live tests in tests/e2e)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import httpx
import pytest

from connectors.tryton import TrytonConnector, TrytonOptions, _diff
from syncd.errors import AuthenticationError, ConfigError, PermissionDenied, Throttled, TransientError
from syncd.model import ContactWrite, Cursor
from syncd.testing.context import connector_context

KEY = "k3y-0123456789abcdef"


def make(tmp_path, handler, **options) -> TrytonConnector:
    opts = TrytonOptions(url="http://tryton.test", database="db", api_key=KEY, **options)
    ctx = connector_context(tmp_path, field_names=("name", "email"),
                            transport=httpx.MockTransport(handler))
    return TrytonConnector(opts, ctx)


def _domain(request: httpx.Request):
    return json.loads(base64.urlsafe_b64decode(request.url.params["d"]))


@pytest.mark.parametrize("status, error", [(401, AuthenticationError), (403, PermissionDenied),
                                           (429, Throttled), (503, TransientError)])
def test_remote_failures_surface_as_the_shared_errors(tmp_path, status, error):
    def handler(request):
        return httpx.Response(status, headers={"Retry-After": "0"}, text="<html>no</html>")

    with pytest.raises(error) as caught:
        make(tmp_path, handler).health_check()
    assert KEY not in str(caught.value)
    assert "health check" in str(caught.value)


def test_unauthorised_error_explains_the_application_key(tmp_path):
    with pytest.raises(AuthenticationError, match="res.user.application"):
        make(tmp_path, lambda r: httpx.Response(401)).health_check()


def test_a_refused_write_fails_that_record_only(tmp_path):
    def handler(request):
        if request.method == "GET":
            return httpx.Response(200, json=[])
        body = json.loads(request.content)
        if body["name"] == "bad":
            return httpx.Response(400, json={"status": 400, "message": "The value is not valid",
                                             "description": "name"})
        return httpx.Response(200, json={"id": 7})

    results = make(tmp_path, handler).upsert_contacts([
        ContactWrite("a", None, {"name": "bad"}), ContactWrite("b", None, {"name": "good"})])
    assert [r.ok for r in results] == [False, True]
    assert "The value is not valid" in results[0].error and not results[0].retriable


def test_an_ambiguous_create_is_not_resent_but_marked_retriable(tmp_path):
    posts = []

    def handler(request):
        if request.method == "GET":
            return httpx.Response(200, json=[])
        posts.append(request)
        return httpx.Response(502, text="bad gateway")

    [result] = make(tmp_path, handler).upsert_contacts([ContactWrite("a", None, {"name": "x"})])
    assert len(posts) == 1 and not result.ok and result.retriable


def test_a_create_carries_its_key_and_a_repeat_becomes_an_update(tmp_path):
    calls = []

    def handler(request):
        calls.append((request.method, request.url.path))
        if request.url.path.endswith("party.identifier"):
            assert _domain(request)[0] == ["code", "in", ["syncd:k1"]]
            return httpx.Response(200, json=[{"id": 1, "code": "syncd:k1", "party": 42}])
        if request.method == "GET":
            return httpx.Response(200, json=[{"id": 42, "contact_mechanisms": []}])
        return httpx.Response(200, json={"id": 42})

    [result] = make(tmp_path, handler).upsert_contacts([ContactWrite("k1", None, {"name": "x"})])
    assert result.ok and result.id == "42"
    assert ("PUT", "/db/rest/model/party.party/42") in calls
    assert not any(m == "POST" for m, _ in calls)


STAMP = {"__class__": "datetime", "year": 2026, "month": 1, "day": 2, "hour": 3, "minute": 4,
         "second": 5, "microsecond": 600}
AT = datetime(2026, 1, 2, 3, 4, 5, 600, tzinfo=UTC)


def _server(field_names: list[str], seen: list):
    def handler(request):
        domain = _domain(request)
        seen.append((request.url.path.rsplit("/", 1)[-1], domain))
        if request.url.path.endswith("ir.model.field"):
            return httpx.Response(200, json=[{"id": i, "name": n} for i, n in enumerate(field_names)])
        return httpx.Response(200, json=[])
    return handler


def test_changed_since_is_one_search_on_last_modified_at_with_an_id_tie_break(tmp_path):
    seen: list = []
    connector = make(tmp_path, _server(["name", "write_date", "last_modified_at"], seen))
    for _ in range(2):
        page = connector.changed_contacts(Cursor(AT, "9"), 10)
        assert page.contacts == [] and page.next == Cursor(AT, "9") and not page.more
    searches = [d for model, d in seen if model == "party.party"]
    assert len(searches) == 2 and len(seen) == 3  # the field list is read once per process
    assert searches[0] == [["OR", [["last_modified_at", ">", STAMP]],
                            [["last_modified_at", "=", STAMP], ["id", ">", 9]]]]


def test_without_last_modified_at_write_date_is_searched_and_create_date_for_the_rest(tmp_path):
    seen: list = []
    connector = make(tmp_path, _server(["name", "write_date"], seen))
    connector.changed_contacts(Cursor(AT, "9"), 10)
    connector.changed_contacts(Cursor(AT, "9"), 10)
    domains = [d for model, d in seen if model == "party.party"]
    assert domains.count([["write_date", "=", None]]) == 1  # the probe, once per process
    assert [["write_date", "!=", None], ["OR", [["write_date", ">", STAMP]],
                                         [["write_date", "=", STAMP], ["id", ">", 9]]]] in domains


def test_health_check_names_configured_fields_tryton_lacks(tmp_path):
    opts = TrytonOptions(url="http://tryton.test", database="db", api_key=KEY)
    ctx = connector_context(tmp_path, field_names=("name", "email", "status"),
                            transport=httpx.MockTransport(_server(["name", "code"], [])))
    with pytest.raises(ConfigError, match="party.party has no field 'status'"):
        TrytonConnector(opts, ctx).health_check()


def test_phone_diff_rewrites_rows_instead_of_appending():
    have = [{"id": 1, "type": "phone", "value": "+380441110001"},
            {"id": 2, "type": "mobile", "value": "+380671110002"}]
    actions = _diff(have, ["+380 44 111 0001", "+380509990000"], new_type=lambda v: "phone")
    assert actions == [["write", [2], {"value": "+380509990000"}]]
    assert _diff(have, ["+380441110001"], new_type=str) == [["delete", [2]]]
    assert _diff([], ["+1", "+1"], new_type=lambda v: "phone") == [
        ["create", [{"type": "phone", "value": "+1"}]]]


def test_options_need_exactly_one_key_source(tmp_path):
    with pytest.raises(ValueError):
        TrytonOptions(url="http://x", database="d")
    missing = TrytonOptions(url="http://x", database="d", api_key_file=tmp_path / "nope")
    with pytest.raises(ConfigError, match="api_key_file"):
        missing.secret()
    (tmp_path / "key").write_text(KEY + "\n")
    assert TrytonOptions(url="http://x", database="d", api_key_file=tmp_path / "key").secret() == KEY


def test_delete_contacts_archives_the_party_and_a_party_already_gone_is_ok(tmp_path):
    seen = []

    def handler(request):
        seen.append((request.method, request.url.path, json.loads(request.content or b"null")))
        if request.url.path.endswith("/404"):
            return httpx.Response(404, json={"status": 404, "message": "Not Found"})
        return httpx.Response(200, json={"id": 7})

    connector = make(tmp_path, handler)
    results = connector.delete_contacts(["7", "404", "x"])
    assert [r.ok for r in results] == [True, True, False]
    assert seen[0] == ("PUT", "/db/rest/model/party.party/7", {"active": False})
    assert len(seen) == 2 and connector.capabilities.deletes == "flag"


def test_an_archived_party_is_read_as_deleted(tmp_path):
    row = {"id": 5, "name": "Old", "active": False, "write_date": None,
           "create_date": {"__class__": "datetime", "year": 2026, "month": 1, "day": 2, "hour": 3,
                           "minute": 4, "second": 5, "microsecond": 0},
           "contact_mechanisms": []}
    connector = make(tmp_path, lambda request: httpx.Response(200, json=[row]))
    assert [c.deleted for c in connector.fetch_contacts(["5"])] == [True]
