"""Secrets: ${ENV}, *_file, literal-secret warnings, registration for redaction."""

from __future__ import annotations

import pytest

from cfgkit import TOKEN, base, write
from syncd.cli import main
from syncd.config import load_config
from syncd.errors import ConfigError
from syncd.redact import redact


def test_env_reference_is_substituted_and_registered_as_a_secret(tmp_path):
    config = load_config(write(tmp_path, base()))
    assert config.okitoki.api_token == TOKEN
    assert redact(f"GET /api/v1/dialers/stat?x={TOKEN}") == "GET /api/v1/dialers/stat?x=***"


def test_token_file_is_read_and_stripped_relative_to_the_config(tmp_path):
    (tmp_path / "okitoki.token").write_text(f"  {TOKEN}-file\n")
    cfg = base()
    del cfg["okitoki"]["api_token"]
    cfg["okitoki"]["api_token_file"] = "okitoki.token"
    config = load_config(write(tmp_path, cfg))
    assert config.okitoki.api_token == f"{TOKEN}-file"
    assert TOKEN not in redact(f"token {TOKEN}-file")


def test_empty_token_file_is_a_problem(tmp_path):
    (tmp_path / "empty").write_text("\n")
    cfg = base()
    del cfg["okitoki"]["api_token"]
    cfg["okitoki"]["api_token_file"] = str(tmp_path / "empty")
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, cfg))
    assert any(p.startswith("okitoki.api_token_file: ") and "is empty" in p for p in info.value.problems)


def test_webhook_token_file_is_read(tmp_path):
    (tmp_path / "hook").write_text("hook-secret-42\n")
    cfg = base()
    cfg["okitoki"]["webhook_token_file"] = str(tmp_path / "hook")
    assert load_config(write(tmp_path, cfg)).okitoki.webhook_token == "hook-secret-42"
    assert redact("token=hook-secret-42&x=1").count("hook-secret-42") == 0


def test_connector_option_file_is_read_into_the_option(tmp_path):
    (tmp_path / "crm.key").write_text("crm-api-key-99\n")
    cfg = base()
    cfg["crm"]["options"]["api_key_file"] = "crm.key"
    config = load_config(write(tmp_path, cfg))
    assert config.crm.options["api_key"] == "crm-api-key-99"
    assert "api_key_file" not in config.crm.options
    assert redact("key crm-api-key-99") == "key ***"


def test_env_reference_works_in_any_string_and_url_passwords_are_registered(tmp_path, monkeypatch):
    monkeypatch.setenv("CRM_DB_PASSWORD", "pg-pass-777")
    cfg = base()
    cfg["crm"]["options"]["url"] = "postgresql://syncd:${CRM_DB_PASSWORD}@127.0.0.1/crm"
    config = load_config(write(tmp_path, cfg))
    assert config.crm.options["url"] == "postgresql://syncd:pg-pass-777@127.0.0.1/crm"
    assert "pg-pass-777" not in redact(config.crm.options["url"])


def test_literal_secret_in_a_world_readable_file_warns(tmp_path):
    cfg = base()
    cfg["okitoki"]["api_token"] = "literal-token-1234"
    warnings: list[str] = []
    path = write(tmp_path, cfg, mode=0o644)
    load_config(path, on_warning=warnings.append)
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{path}: okitoki.api_token: a literal secret")
    assert "0644" in warnings[0] and "literal-token-1234" not in warnings[0]


@pytest.mark.parametrize("mode,value", [(0o600, "literal-token-1234"), (0o644, "${OKITOKI_API_TOKEN}")])
def test_no_warning_for_a_private_file_or_an_env_reference(tmp_path, mode, value):
    cfg = base()
    cfg["okitoki"]["api_token"] = value
    warnings: list[str] = []
    load_config(write(tmp_path, cfg, mode=mode), on_warning=warnings.append)
    assert warnings == []


def test_literal_secret_warning_goes_to_stderr_and_check_still_passes(tmp_path, capsys):
    cfg = base()
    cfg["okitoki"]["api_token"] = "literal-token-5678"
    assert main(["check", "-c", str(write(tmp_path, cfg, mode=0o640))]) == 0
    out = capsys.readouterr()
    assert "warning:" in out.err and "okitoki.api_token" in out.err
    assert "literal-token-5678" not in out.out + out.err


def test_a_secret_of_the_wrong_type_is_not_echoed(tmp_path, capsys):
    cfg = base()
    cfg["okitoki"]["api_token"] = 987654321
    cfg["daemon"]["log_level"] = "loud"
    assert main(["check", "-c", str(write(tmp_path, cfg))]) == 78
    err = capsys.readouterr().err
    assert "okitoki.api_token: " in err and "987654321" not in err


def test_missing_env_reference_names_the_key_not_a_value(tmp_path):
    cfg = base()
    cfg["okitoki"]["webhook_token"] = "${SYNCD_TEST_NO_HOOK}"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, cfg))
    assert info.value.problems == ["okitoki.webhook_token: environment variable "
                                   "SYNCD_TEST_NO_HOOK is not set"]
