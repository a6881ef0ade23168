"""The endpoint table and its `[okitoki.endpoints]` overrides."""

from __future__ import annotations

import pytest

from syncd.errors import ConfigError
from syncd.okitoki.endpoints import ENDPOINTS, OPERATIONS, validate_overrides
from syncd.okitoki.profile import resolve_endpoints

from .conftest import make_client
from .scripted import Answer


def test_the_table_holds_exactly_the_profile_operations() -> None:
    assert set(OPERATIONS) == {
        "create_task", "add_tasks", "remove_task", "dialers", "list_add", "list_check",
        "list_remove", "upsert_contact", "export_contacts", "call_log", "call_data",
        "add_call_data"}
    assert ENDPOINTS["add_tasks"].path == "/api/v1/imports/tasks/add"
    assert ENDPOINTS["add_tasks"].max_items == 1000
    assert {op for op, e in ENDPOINTS.items() if e.paged} == {"export_contacts", "call_log"}
    assert {op for op, e in ENDPOINTS.items() if e.confirmed} == {"create_task", "dialers", "list_add"}


def test_an_unknown_operation_is_refused_with_a_suggestion_and_the_valid_names() -> None:
    problems = validate_overrides({"call_logs": "/api/v1/calls/list"})
    assert len(problems) == 1
    assert 'okitoki.endpoints.call_logs: unknown operation "call_logs"' in problems[0]
    assert 'did you mean "call_log"' in problems[0]
    for op in OPERATIONS:
        assert op in problems[0]


@pytest.mark.parametrize("path", ["api/v1/calls/log", "/api/v1/calls log", "/x?y=1", 5])
def test_an_override_must_be_a_plain_path(path) -> None:
    [problem] = validate_overrides({"call_log": path})
    assert problem.startswith("okitoki.endpoints.call_log:")


def test_resolving_bad_overrides_raises_one_config_error_with_every_problem() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_endpoints({"nope": "/a", "call_log": "b"})
    assert len(info.value.problems) == 2


def test_an_override_changes_the_path_the_client_calls(scripted) -> None:
    scripted.default = Answer(200, {"exists": True})
    client = make_client(scripted.url, endpoints={"list_check": "/api/v2/lists/has"})
    assert client.list_check("7", "+380501112233") is True
    assert scripted.arrivals[0].path == "/api/v2/lists/has"
    assert client.endpoints["list_check"].method == "GET"
