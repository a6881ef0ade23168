"""[calls] max_call_duration replaces the guessed overlap; old configs still load."""

from __future__ import annotations

from datetime import timedelta

import pytest

from syncd.config import validate_config_dict
from syncd.connector import load_connector

TRYTON = {"url": "http://127.0.0.1:8000", "database": "crm", "api_key": "tryton-key-123"}


def _config(**calls) -> dict:
    return {"okitoki": {"url": "http://127.0.0.1:9", "api_token": "okitoki-token-123"},
            "crm": {"connector": "tryton", "options": TRYTON},
            "contacts": {"fields": {"name": {"crm": "name", "okitoki": "name"}}}, "calls": calls}


def test_the_default_window_covers_four_hour_calls_without_any_key() -> None:
    config = validate_config_dict(_config(), source="t.toml", on_warning=lambda _: None)
    assert config.calls.max_call_duration == timedelta(hours=4) and config.calls.overlap is None


def test_an_old_config_with_overlap_loads_with_a_warning_naming_the_key() -> None:
    warnings: list[str] = []
    config = validate_config_dict(_config(overlap="6h"), source="t.toml", on_warning=warnings.append)
    assert config.calls.overlap == timedelta(hours=6)
    [line] = [w for w in warnings if "calls.overlap" in w]
    assert line.startswith("t.toml: calls.overlap: deprecated") and "max_call_duration" in line


def test_a_config_without_overlap_gets_no_deprecation_warning() -> None:
    warnings: list[str] = []
    validate_config_dict(_config(max_call_duration="2h"), source="t.toml", on_warning=warnings.append)
    assert not [w for w in warnings if "overlap" in w]


@pytest.mark.parametrize("name, updates", [("sql", True), ("hubspot", True), ("kommo", True),
                                           ("bitrix24", True), ("bottlecrm", True),
                                           ("tryton", False), ("pipedrive", False)])
def test_each_connector_says_whether_it_can_update_a_logged_call(name, updates) -> None:
    caps = load_connector(name).capabilities
    assert caps.calls_update is updates
    if not updates:   # syncd check shows why, naming the limit
        assert any("call" in note and ("read-only" in note or "cannot be changed" in note)
                   for note in caps.notes), caps.notes
