"""The keys of event-driven sync: each bad value is one line naming the key, exit 78."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cfgkit import base, write
from connectors.bitrix24 import Bitrix24Options
from connectors.kommo.connector import KommoOptions
from syncd.cli import main


@pytest.mark.parametrize("section, key, value, words", [
    ("crm", "webhook_hints_per_minute", 0, "greater than or equal to 1"),
    ("crm", "webhook_hints_per_minute", "many", "integer"),
    ("okitoki", "webhook_retries_per_hour", -1, "greater than or equal to 0"),
    ("okitoki", "webhook_retries_per_hour", 100_000, "less than or equal to 3600"),
])
def test_a_bad_event_key_names_the_key_and_exits_78(tmp_path, capsys, section, key, value, words):
    cfg = base()
    cfg[section][key] = value
    path = write(tmp_path, cfg)
    assert main(["check", "-c", str(path)]) == 78
    lines = [line for line in capsys.readouterr().err.splitlines()
             if line.startswith(f"{path}: {section}.{key}: ")]
    assert len(lines) == 1 and words in lines[0], lines


def test_the_event_keys_default_to_bounded_values(tmp_path, capsys):
    path = write(tmp_path, base())
    assert main(["check", "-c", str(path)]) == 0, capsys.readouterr().err


def test_a_short_webhook_secret_is_refused_by_the_connector_options():
    with pytest.raises(ValidationError, match="application_token"):
        Bitrix24Options(webhook_url="https://p.bitrix24.test/rest/1/abcdefgh/", application_token="short")
    with pytest.raises(ValidationError, match="webhook_token"):
        KommoOptions(url="https://acme.kommo.com", token="llt-token", webhook_token="short")
