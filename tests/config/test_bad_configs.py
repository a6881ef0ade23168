"""At least 30 bad configurations: each names its key path, and the CLI exits 78 (EX_CONFIG)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from cfgkit import base, write
from syncd.cli import main


def _set(path: str, value):
    """A mutation that sets ``a.b.c`` (``dialer[1].ttl`` style indexes allowed)."""
    def mutate(cfg):
        node = cfg
        parts = path.replace("]", "").replace("[", ".").split(".")
        for part in parts[:-1]:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        node[parts[-1]] = value
    return mutate


def _del(path: str):
    def mutate(cfg):
        node = cfg
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[part]
        del node[parts[-1]]
    return mutate


def _all(*mutations):
    def mutate(cfg):
        for m in mutations:
            m(cfg)
    return mutate


def _dialer_as_table(cfg):
    cfg["dialer"] = {"name": "x", "dialer_id": 1}  # written as [dialer] instead of [[dialer]]


CASES = [
    # (id, mutation, expected key path, expected words)
    ("log-format", _set("daemon.log_format", "fancy"), "daemon.log_format", "'json'"),
    ("log-level", _set("daemon.log_level", "loud"), "daemon.log_level", "'debug'"),
    ("shutdown-not-duration", _set("daemon.shutdown_timeout", "soon"), "daemon.shutdown_timeout", '"soon" is not a duration'),
    ("shutdown-zero", _set("daemon.shutdown_timeout", "0s"), "daemon.shutdown_timeout", "longer than zero"),
    ("push-interval-int", _set("daemon.push_interval", 5), "daemon.push_interval", "5 is not a duration"),
    ("daemon-typo", _set("daemon.stat_url", "x"), "daemon.stat_url", 'did you mean "state_url"'),
    ("state-url-mysql", _set("daemon.state_url", "mysql://db/x"), "daemon.state_url", "not a SQLite or PostgreSQL URL"),
    ("http-listen", _set("daemon.http_listen", "9410"), "daemon.http_listen", "HOST:PORT"),
    ("unknown-section", _set("dialers", {"name": "x"}), "dialers", 'did you mean "dialer"'),
    ("okitoki-missing", _del("okitoki"), "okitoki", "is required"),
    ("okitoki-url-missing", _del("okitoki.url"), "okitoki.url", "is required"),
    ("okitoki-url-no-scheme", _set("okitoki.url", "acme.oki-toki.net"), "okitoki.url", "not an http(s) URL"),
    ("token-and-file", _set("okitoki.api_token_file", "token.txt"), "okitoki.api_token", "exactly one"),
    ("token-neither", _del("okitoki.api_token"), "okitoki.api_token", "is required"),
    ("token-env-missing", _set("okitoki.api_token", "${NO_SUCH_VAR_FOR_SYNCD}"), "okitoki.api_token", "NO_SUCH_VAR_FOR_SYNCD is not set"),
    ("token-file-missing", _all(_del("okitoki.api_token"), _set("okitoki.api_token_file", "/nonexistent/okitoki")), "okitoki.api_token_file", "cannot read"),
    ("timezone", _set("okitoki.timezone", "Europe/Kyif"), "okitoki.timezone", "not an IANA time zone"),
    ("rpm-zero", _set("okitoki.requests_per_minute", 0), "okitoki.requests_per_minute", "greater than or equal to 1"),
    ("in-flight-zero", _set("okitoki.max_in_flight", 0), "okitoki.max_in_flight", "greater than or equal to 1"),
    ("in-flight-huge", _set("okitoki.max_in_flight", 500), "okitoki.max_in_flight", "less than or equal to 32"),
    ("crm-in-flight-text", _set("crm.max_in_flight", "many"), "crm.max_in_flight", "integer"),
    ("budget-text", _set("okitoki.daily_request_budget", "lots"), "okitoki.daily_request_budget", "integer"),
    ("okitoki-poll-words", _set("okitoki.poll_interval", "30 seconds"), "okitoki.poll_interval", "is not a duration"),
    ("endpoint-unknown-op", _set("okitoki.endpoints", {"call_lgo": "/x"}), "okitoki.endpoints.call_lgo", 'did you mean "call_log"'),
    ("endpoint-not-path", _set("okitoki.endpoints", {"call_log": "calls/log"}), "okitoki.endpoints.call_log", "not a path"),
    ("okitoki-typo", _set("okitoki.api_tokn", "x"), "okitoki.api_tokn", 'did you mean "api_token"'),
    ("crm-connector-missing", _del("crm.connector"), "crm.connector", "is required"),
    ("crm-connector-unknown", _set("crm.connector", "fakee"), "crm.connector", 'unknown connector "fakee"'),
    ("crm-options-unknown", _set("crm.options.urll", "x"), "crm.options.urll", 'did you mean "url"'),
    ("crm-options-type", _set("crm.options.url", 5), "crm.options.url", "valid string"),
    ("crm-options-missing", _del("crm.options.url"), "crm.options.url", "is required"),
    ("crm-timeout-zero", _set("crm.timeout", "0m"), "crm.timeout", "longer than zero"),
    ("region", _set("contacts.default_region", "XX"), "contacts.default_region", "not a region code"),
    ("field-sync", _set("contacts.fields.name.sync", "sideways"), "contacts.fields.name.sync", "'both'"),
    ("field-conflict", _set("contacts.fields.name.conflict", "loudest"), "contacts.fields.name.conflict", "'newest'"),
    ("field-typo", _set("contacts.fields.name.crmm", "x"), "contacts.fields.name.crmm", 'did you mean "crm"'),
    ("field-no-side", _set("contacts.fields.email", {"sync": "both"}), "contacts.fields.email", "crm = ... and/or okitoki"),
    ("forward-needs-order", _all(_set("contacts.fields.status.conflict", "forward"), _set("calls.status_order", [])), "contacts.fields.status.conflict", "calls.status_order"),
    ("dialer-as-table", _dialer_as_table, "dialer", "[[dialer]]"),
    ("dialer-ttl", _set("dialer[1].ttl", "3x"), "dialer[1].ttl", '"3x" is not a duration'),
    ("dialer-name-dup", _set("dialer[1].name", "new-leads"), "dialer[1].name", "already the name of dialer[0]"),
    ("dialer-id-missing", _del_dialer_id := (lambda cfg: cfg["dialer"][0].pop("dialer_id")), "dialer[0].dialer_id", "is required"),
    ("dialer-priority", _set("dialer[0].priority", 5), "dialer[0].priority", "less than or equal to 2"),
    ("dialer-when-unknown-field", _set("dialer[0].when", {"stauts": ["new"]}), "dialer[0].when.stauts", 'did you mean "status"'),
    ("dialer-when-not-list", _set("dialer[0].when", {"status": "new"}), "dialer[0].when.status", "valid list"),
    ("dialer-typo", _set("dialer[1].dialer", 3), "dialer[1].dialer", 'did you mean "dialer_id"'),
    ("unknown-numbers", _set("calls.unknown_numbers", "ignore"), "calls.unknown_numbers", "'skip'"),
    ("on-delete", _set("contacts.on_delete", "delete"), "contacts.on_delete", "'unlink' or 'propagate'"),
    ("outcome-not-in-order", _set("calls.outcome_status.answered", "talked"), "calls.outcome_status.answered", '"talked" is not in calls.status_order'),
    ("outcome-unknown", _set("calls.outcome_status.picked_up", "contacted"), "calls.outcome_status.picked_up", "unknown call outcome"),
    ("settle-negative", _set("calls.settle_delay", "-5s"), "calls.settle_delay", "is not a duration"),
    ("max-call-duration-bad", _set("calls.max_call_duration", "long"), "calls.max_call_duration", '"long" is not a duration'),
    ("max-call-duration-zero", _set("calls.max_call_duration", "0s"), "calls.max_call_duration", "longer than zero"),
    ("max-call-duration-too-long", _set("calls.max_call_duration", "2d"), "calls.max_call_duration", "at most 24h"),
    ("status-field", _set("calls.status_field", "stage"), "calls.status_field", "not a field of [contacts.fields]"),
    ("status-order-dup", _set("calls.status_order", ["new", "won", "new", "callback", "contacted"]), "calls.status_order", "more than once"),
    ("dnc-no-list", _del("do_not_call.list_id"), "do_not_call.list_id", "is required when do_not_call.crm_field"),
    ("dnc-no-field", _del("do_not_call.crm_field"), "do_not_call.crm_field", "is required when do_not_call.list_id"),
    ("dnc-list-text", _set("do_not_call.list_id", "seven"), "do_not_call.list_id", "integer"),
    ("cap-calls", _set("crm.connector", "limited"), "calls.to_crm", 'the "limited" connector cannot write calls'),
    ("cap-dnc", _set("crm.connector", "limited"), "do_not_call.crm_field", "cannot read a do-not-call flag"),
    ("cap-create", _all(_set("crm.connector", "limited"), _set("contacts.create_in_crm", True)), "contacts.create_in_crm", "cannot create contacts"),
    ("verify-interval", _set("verify.interval", "daily"), "verify.interval", '"daily" is not a duration'),
    ("verify-interval-negative", _set("verify.interval", "-1d"), "verify.interval", "is not a duration"),
    ("verify-calls-days", _set("verify.calls_days", 40), "verify.calls_days", "31"),
    ("verify-repair", _set("verify.repair", "sometimes"), "verify.repair", "bool"),
    ("verify-typo", _set("verify.intervall", "1d"), "verify.intervall", 'did you mean "interval"'),
    # issue 11: values that used to overflow, crash, or pass unnoticed
    ("duration-overflow", _set("okitoki.poll_interval", "9" * 30 + "d"), "okitoki.poll_interval", "too long"),
    ("duration-too-long", _set("dialer[0].ttl", "4000d"), "dialer[0].ttl", 'at most "3650d"'),
    ("timezone-folder", _set("okitoki.timezone", "Europe"), "okitoki.timezone", "not an IANA time zone"),
    ("timezone-deep-folder", _set("okitoki.timezone", "America/Argentina"), "okitoki.timezone", "not an IANA time zone"),
    ("nested-arrays", _set("crm.options.deep", [[[[[[[[[[[[[[[[[[["x"]]]]]]]]]]]]]]]]]]]), "crm.options.deep" + "[0]" * 14, "nested deeper than 16"),
    ("crm-column-twice", _set("contacts.fields.full_name", {"crm": "name", "okitoki": "details.full"}), "contacts.fields.full_name.crm", '"name" is already mapped by contacts.fields.name'),
    ("okitoki-field-twice", _set("contacts.fields.stage", {"crm": "stage", "okitoki": "details.status"}), "contacts.fields.stage.okitoki", "an Oki-Toki field that syncd writes takes one canonical field"),
    ("bool-for-int", _set("okitoki.requests_per_minute", True), "okitoki.requests_per_minute", "should be a number, not true"),
    ("bool-for-id", _set("dialer[0].dialer_id", False), "dialer[0].dialer_id", "should be a number, not false"),
    ("bool-for-float", _set("guard.max_changed_share", True), "guard.max_changed_share", "should be a number"),
    ("id-beyond-64-bits", _set("do_not_call.list_id", 2**64), "do_not_call.list_id", "out of range"),
    ("budget-beyond-64-bits", _set("okitoki.daily_request_budget", 2**70), "okitoki.daily_request_budget", "out of range"),
    ("dialer-id-beyond-okitoki", _set("dialer[1].dialer_id", 2**40), "dialer[1].dialer_id", "2147483647"),
    ("list-id-negative", _set("do_not_call.list_id", -7), "do_not_call.list_id", "greater than or equal to 1"),
    ("token-empty", _set("okitoki.api_token", ""), "okitoki.api_token", "empty or blank"),
    ("token-blank", _set("okitoki.api_token", " \t "), "okitoki.api_token", "empty or blank"),
    ("webhook-token-blank", _set("okitoki.webhook_token", "  "), "okitoki.webhook_token", "empty or blank"),
    ("crm-secret-blank", _set("crm.options.api_key", " "), "crm.options.api_key", "empty or blank"),
    ("dialer-name-empty", _set("dialer[1].name", ""), "dialer[1].name", "empty or blank"),
    ("field-crm-blank", _set("contacts.fields.name.crm", "  "), "contacts.fields.name.crm", "empty or blank"),
    ("field-name-blank", _set("contacts.fields", {" ": {"crm": "x"}, "status": {"crm": "status"}}), 'contacts.fields." "', "empty or blank"),
    ("connector-blank", _set("crm.connector", ""), "crm.connector", "empty or blank"),
    ("status-order-blank", _set("calls.status_order", ["new", "", "callback", "contacted", "won", "lost"]), "calls.status_order", "empty or blank"),
    ("when-empty-list", _set("dialer[0].when", {"status": []}), "dialer[0].when.status", "an empty list matches no contact"),
    ("http-listen-port-65536", _set("daemon.http_listen", "127.0.0.1:65536"), "daemon.http_listen", "port 0-65535"),
    ("http-listen-port-huge", _set("daemon.http_listen", "127.0.0.1:" + "9" * 25), "daemon.http_listen", "HOST:PORT"),
    ("http-listen-not-address", _set("daemon.http_listen", "not an address:9410"), "daemon.http_listen", "HOST:PORT"),
    ("http-listen-bad-ip", _set("daemon.http_listen", "999.1.1.1:9410"), "daemon.http_listen", "HOST:PORT"),
    ("http-listen-v6-unbracketed", _set("daemon.http_listen", "::1:9410"), "daemon.http_listen", "HOST:PORT"),
    ("okitoki-url-port", _set("okitoki.url", "https://acme.oki-toki.net:70000"), "okitoki.url", "port must be 1-65535"),
    ("okitoki-url-query", _set("okitoki.url", "https://acme.oki-toki.net/?token=x"), "okitoki.url", "has a query string"),
    ("okitoki-url-fragment", _set("okitoki.url", "https://acme.oki-toki.net/#top"), "okitoki.url", "has a fragment"),
    ("okitoki-url-host", _set("okitoki.url", "https://acme oki-toki.net"), "okitoki.url", "not a host name"),
    ("okitoki-url-credentials", _set("okitoki.url", "https://u:p@acme.oki-toki.net"), "okitoki.url", "user name or password"),
    ("state-url-folder", _set("daemon.state_url", "sqlite:////tmp"), "daemon.state_url", "is a directory"),
    ("state-url-under-a-file", _set("daemon.state_url", "sqlite:////etc/hostname/state.db"), "daemon.state_url", "is not a directory"),
    ("state-url-port", _set("daemon.state_url", "postgresql+psycopg://syncd@db:70000/syncd"), "daemon.state_url", "port must be 1-65535"),
    ("state-url-no-database", _set("daemon.state_url", "postgresql+psycopg://syncd@db"), "daemon.state_url", "names no database"),
]


@pytest.mark.parametrize("mutation,key,words", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_configuration_names_the_key_and_exits_78(tmp_path, capsys, mutation, key, words):
    cfg = base()
    mutation(cfg)
    path = write(tmp_path, cfg)
    code = main(["check", "-c", str(path)])
    err = capsys.readouterr().err
    assert code == 78, err
    lines = [line for line in err.splitlines() if line.startswith(f"{path}: {key}: ")]
    assert lines, f"no line for {key!r} in:\n{err}"
    assert any(words in line for line in lines), f"{words!r} not in {lines}"


def test_there_are_at_least_thirty_distinct_bad_configurations():
    assert len({c[0] for c in CASES}) == len(CASES) >= 30
    assert len({c[2] for c in CASES}) >= 30


def test_every_problem_is_reported_at_once(tmp_path, capsys):
    cfg = base()
    for name, mutation, *_ in CASES:
        if name in ("log-format", "okitoki-url-no-scheme", "dialer-ttl", "region", "dnc-no-list",
                    "outcome-not-in-order", "endpoint-unknown-op", "crm-options-unknown"):
            mutation(cfg)
    path = write(tmp_path, cfg)
    assert main(["check", "-c", str(path)]) == 78
    err = capsys.readouterr().err
    for key in ("daemon.log_format", "okitoki.url", "dialer[1].ttl", "contacts.default_region",
                "do_not_call.list_id", "calls.outcome_status.answered",
                "okitoki.endpoints.call_lgo", "crm.options.urll"):
        assert f"{path}: {key}: " in err
    assert "syncd: 8 configuration problems; nothing was done" in err


@pytest.mark.parametrize("url", ["postgresql+psycopg://syncd@%2Frun%2Fpostgresql/syncd",
                                 "postgresql+psycopg://syncd@/syncd?host=/run/postgresql",
                                 "postgresql+psycopg://syncd:pw@db.internal:5432/syncd",
                                 "postgresql+psycopg://syncd@[::1]:5432/syncd"])
def test_postgresql_state_urls_in_use_are_valid(tmp_path, capsys, url):
    cfg = base()
    cfg["daemon"]["state_url"] = url
    assert main(["check", "-c", str(write(tmp_path, cfg))]) == 0, capsys.readouterr().err


@pytest.mark.parametrize("listen,url", [
    ("127.0.0.1:9410", "https://acme.oki-toki.net"), ("[::1]:9410", "https://acme.oki-toki.net/"),
    ("localhost:0", "http://127.0.0.1:8080"), ("0.0.0.0:65535", "https://пример.укр/api"),
])
def test_addresses_and_urls_in_use_are_valid(tmp_path, capsys, listen, url):
    cfg = base()
    cfg["daemon"]["http_listen"], cfg["okitoki"]["url"] = listen, url
    assert main(["check", "-c", str(write(tmp_path, cfg))]) == 0, capsys.readouterr().err


def test_one_crm_column_read_into_two_fields_is_valid(tmp_path, capsys):
    cfg = base()
    cfg["contacts"]["fields"]["status"]["sync"] = "to_okitoki"
    cfg["contacts"]["fields"]["stage"] = {"crm": "status", "okitoki": "details.stage", "sync": "to_okitoki"}
    assert main(["check", "-c", str(write(tmp_path, cfg))]) == 0, capsys.readouterr().err


def test_invalid_toml_is_a_config_error(tmp_path, capsys):
    path = write(tmp_path, "[daemon\nlog_level = 'info'\n")
    assert main(["check", "-c", str(path)]) == 78
    assert f"{path}: not valid TOML" in capsys.readouterr().err


def test_missing_file_is_a_config_error(tmp_path, capsys):
    assert main(["check", "-c", str(tmp_path / "nope.toml")]) == 78
    assert "cannot read the configuration file" in capsys.readouterr().err


def test_bad_configuration_through_the_console_script_exits_78(tmp_path):
    cfg = base()
    cfg["dialer"][1]["ttl"] = "3x"
    path = write(tmp_path, cfg)
    proc = subprocess.run([sys.executable, "-m", "syncd.cli", "check", "-c", str(path)],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "OKITOKI_API_TOKEN": "tok-x-123456"})
    assert proc.returncode == 78
    assert f'{path}: dialer[1].ttl: "3x" is not a duration' in proc.stderr
