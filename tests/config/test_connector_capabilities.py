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


def test_propagating_deletes_to_a_crm_that_cannot_delete_is_refused_naming_the_key() -> None:
    kommo = {"url": "https://acme.kommo.com", "token": "kommo-token-123"}
    with pytest.raises(ConfigError) as err:
        validate_config_dict(_config("kommo", kommo, contacts={
            "on_delete": "propagate", "fields": {"name": {"crm": "name", "okitoki": "name"}}}),
            source="t.toml")
    assert err.value.problems == [
        'contacts.on_delete: the "kommo" connector cannot delete contacts; '
        'set contacts.on_delete = "unlink"']


def test_propagating_deletes_warns_that_okitoki_contacts_are_only_unlinked() -> None:
    warnings: list[str] = []
    config = validate_config_dict(_config("tryton", TRYTON, contacts={
        "on_delete": "propagate", "fields": {"name": {"crm": "name", "okitoki": "name"}}}),
        source="t.toml", on_warning=warnings.append)
    assert config.contacts.on_delete == "propagate"
    assert any("contacts.on_delete: " in w and "only unlinked in Oki-Toki" in w for w in warnings)


@pytest.mark.parametrize("connector, deletes, can_delete", [
    ("tryton", "flag", True), ("bitrix24", "verify_only", True), ("kommo", "verify_only", False),
    ("bottlecrm", "verify_only", True), ("hubspot", "verify_only", True),
    ("pipedrive", "verify_only", True), ("sql", "verify_only", True)])
def test_connectors_declare_how_they_see_deletes(connector, deletes, can_delete) -> None:
    # the SQL connector says "flag" once it has reflected a configured deleted_column
    from syncd.connector import load_connector
    caps = load_connector(connector).capabilities
    assert (caps.deletes, caps.contacts_delete) == (deletes, can_delete)
