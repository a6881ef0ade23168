"""`syncd check` reports what the configuration asks of a connector that it cannot do,
before anything connects (issue 4: capabilities are declared, not discovered at run time)."""

from __future__ import annotations

import pytest

from syncd.config import validate_config_dict
from syncd.errors import ConfigError

TRYTON = {"url": "http://127.0.0.1:8000", "database": "crm", "api_key": "tryton-key-123"}


def _config(connector: str, options: dict, **sections) -> dict:
    return {"okitoki": {"url": "http://127.0.0.1:9", "api_token": "okitoki-token-123"},
            "crm": {"connector": connector, "options": options},
            "contacts": {"fields": {"name": {"crm": "name", "okitoki": "name"}}}, **sections}


def test_do_not_call_on_tryton_is_refused_at_check_naming_the_key() -> None:
    with pytest.raises(ConfigError) as err:
        validate_config_dict(_config("tryton", TRYTON,
                                     do_not_call={"crm_field": "do_not_call", "list_id": 7}),
                             source="t.toml")
    assert err.value.problems == [
        'do_not_call.crm_field: the "tryton" connector cannot read a do-not-call flag; '
        'remove [do_not_call] or use a connector that supports it']


def test_the_same_config_without_do_not_call_is_valid_for_tryton() -> None:
    warnings: list[str] = []
    config = validate_config_dict(_config("tryton", TRYTON), source="t.toml",
                                  on_warning=warnings.append)
    assert config.crm.connector == "tryton"
    assert any("no do-not-call flag" in w for w in warnings)   # the connector's own note


@pytest.mark.parametrize("connector", ["bitrix24", "kommo", "bottlecrm", "hubspot", "pipedrive", "sql"])
def test_connectors_declare_their_capabilities_before_connecting(connector) -> None:
    from syncd.connector import Capabilities, load_connector
    assert isinstance(load_connector(connector).capabilities, Capabilities)
