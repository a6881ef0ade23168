"""The API profile as data: the shipped file, a user's overrides, validation naming the key,
and a client and a sandbox that both follow a profile where every name was changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from syncd.config import validate_config_dict
from syncd.errors import ConfigError
from syncd.model import ContactWrite, TaskSpec
from syncd.okitoki.endpoints import ENDPOINTS
from syncd.okitoki.profile import (
    MissingField,
    MissingRecordField,
    load_profile,
    shipped_data,
    validate,
)
from syncd.testing.sandbox import running_sandbox

from .conftest import make_client

RENAMED = Path(__file__).with_name("profiles") / "renamed.toml"
TOKEN = "profile-test-token-91ab"


def test_the_shipped_profile_is_valid_and_is_the_endpoint_table() -> None:
    assert validate(shipped_data()) == []
    profile = load_profile()
    assert profile.operations == ENDPOINTS
    assert profile.operations["call_log"].paging["items"] == "calls"
    assert profile.date_format == "%d.%m.%Y %H:%M:%S" and profile.timezone == "account"


def test_a_user_file_overrides_only_what_it_names(tmp_path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text('[operations.call_log.record]\nsession_id = "call_id"\n'
                    '[operations.call_log.paging]\nper_page = "limit"\n', encoding="utf-8")
    profile = load_profile(path, {"dialers": "/api/v1/dialers/list"})
    call_log = profile.operations["call_log"]
    assert call_log.record["session_id"] == "call_id"
    assert call_log.record["stime"] == "stime"                 # untouched keys stay shipped
    assert call_log.paging == {"page": "page", "per_page": "limit", "pages": "pages", "items": "calls"}
    assert profile.operations["dialers"].path == "/api/v1/dialers/list"   # the short form


@pytest.mark.parametrize("text, key", [
    ('[operations.call_lgo]\npath = "/x"\n', "operations.call_lgo"),
    ('[operations.call_log]\nmethod = "PUT"\n', "operations.call_log.method"),
    ('[operations.call_log]\npath = "calls"\n', "operations.call_log.path"),
    ('[operations.call_log]\nform = "xml"\n', "operations.call_log.form"),
    ('[operations.call_log]\nmax_items = 0\n', "operations.call_log.max_items"),
    ('[operations.call_log.record]\nsesion_id = "id"\n', "operations.call_log.record.sesion_id"),
    ('[operations.call_log.record]\nsession_id = "call id"\n', "operations.call_log.record.session_id"),
    ('[operations.call_log.paging]\noffset = "o"\n', "operations.call_log.paging.offset"),
    ('[operations.dialers.paging]\npage = "p"\n', "operations.dialers.paging"),
    ('[operations.list_add.record]\nid = "x"\n', "operations.list_add.record.id"),
    ('[dates]\nformat = "%d.%m"\n', "dates.format"),
    ('[dates]\nformat = "yesterday"\n', "dates.format"),
    ('[dates]\ntimezone = "Mars/Olympus"\n', "dates.timezone"),
    ('[operations.call_log]\nanswer_date_format = 5\n', "operations.call_log.answer_date_format"),
    ("[extra]\nx = 1\n", "extra"),
])
def test_a_bad_profile_stops_the_start_naming_the_key(tmp_path, text, key) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        validate_config_dict({"okitoki": {"url": "https://acme.oki-toki.net", "api_token": "t",
                                          "profile": str(path)}}, base_dir=tmp_path)
    lines = [p for p in caught.value.problems if p.startswith("okitoki.profile")]
    assert len(lines) == 1 and f"okitoki.profile: {key}:" in lines[0], caught.value.problems


def test_an_unreadable_or_broken_profile_file_is_a_config_problem(tmp_path) -> None:
    with pytest.raises(ConfigError, match='okitoki.profile: cannot read ".*nope.toml"'):
        load_profile(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[operations\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        load_profile(broken)


def _config(tmp_path, profile: str) -> dict:
    from syncd.demo import demo_config
    config = demo_config(tmp_path, "https://acme.oki-toki.net", "tok-5e1f")
    config["okitoki"]["profile"] = profile
    return config


def test_a_relative_profile_path_is_read_next_to_the_config_file(tmp_path) -> None:
    (tmp_path / "p.toml").write_text('[operations.call_log]\npath = "/c"\n', encoding="utf-8")
    config = validate_config_dict(_config(tmp_path, "p.toml"), base_dir=tmp_path)
    assert config.okitoki.profile == str(tmp_path / "p.toml")


def test_the_cli_exits_78_on_a_bad_profile_naming_the_key(tmp_path, capsys) -> None:
    from syncd.cli import main
    from syncd.testing.scenario import to_toml
    (tmp_path / "p.toml").write_text('[operations.call_log]\nmethod = "PUT"\n', encoding="utf-8")
    (tmp_path / "c.toml").write_text(to_toml(_config(tmp_path, "p.toml")), encoding="utf-8")
    (tmp_path / "c.toml").chmod(0o600)
    assert main(["check", "-c", str(tmp_path / "c.toml")]) == 78
    assert "okitoki.profile: operations.call_log.method:" in capsys.readouterr().err


@pytest.fixture(scope="module")
def renamed_sandbox():
    with running_sandbox(TOKEN, profile=load_profile(RENAMED)) as sb:
        yield sb


@pytest.fixture
def renamed_client(renamed_sandbox):
    renamed_sandbox.reset()
    client = make_client(renamed_sandbox.url, token=TOKEN)
    client = type(client)(client.remote, timezone="Europe/Kyiv", profile=load_profile(RENAMED))
    yield client
    client.close()


def test_every_operation_works_against_a_sandbox_where_every_name_was_changed(renamed_sandbox, renamed_client) -> None:
    sb, client = renamed_sandbox, renamed_client
    start = datetime.now(UTC) - timedelta(minutes=5)
    assert "101" in client.dialers() and client.dialers()["101"].name == "New leads"
    when = datetime(2030, 5, 6, 7, 8, 9, tzinfo=UTC)
    task_id = client.create_task(TaskSpec(dialer_id="101", phones=("380501112233",), date=when,
                                          details={"name": "Ann"}))
    ids = client.add_tasks("102", [TaskSpec(dialer_id="102", phones=("380501112244",)),
                                   TaskSpec(dialer_id="102", phones=("380501112255",))])
    tasks = {str(t["id"]): t for t in sb.state()["tasks"]}
    assert tasks[task_id]["details"] == {"name": "Ann"} and set(ids) <= set(tasks)
    assert client.remove_task("102", task_id=ids[0]) == 1
    assert client.list_add("7", ["380509998877"]) == 1
    assert client.list_check("7", "380509998877") is True
    assert client.list_remove("7", ["380509998877"]) == 1
    contact_id = client.upsert_contact(ContactWrite(key="k1", id=None, fields={"name": "Bob"},
                                                    phones=("380671234567",)))
    exported = {c.id: c for c in client.export_contacts(start, per_page=2)}
    assert exported[contact_id].fields["name"] == "Bob"
    assert exported[contact_id].phones == ("380671234567",)
    assert exported[contact_id].updated_at is not None
    call = sb.add_call(phone="380501112233", direction="dialer", outcome="answered", duration=42,
                       dialer_id=101, task_id=int(task_id), user_id=1)
    calls = list(client.call_log(start, datetime.now(UTC) + timedelta(minutes=1), per_page=1))
    [seen] = [c for c in calls if c.session_id == str(call["session_id"])]
    assert seen.phone == "380501112233" and seen.talk_s == 42 and seen.task_id == task_id
    assert abs((seen.started_at - datetime.now(UTC)).total_seconds()) < 600
    assert client.call(seen.session_id).session_id == seen.session_id
    client.add_call_data(seen.session_id, {"crm_activity": "A-1"})
    assert "crm_activity" in next(c for c in sb.state()["calls"]
                                  if str(c["session_id"]) == seen.session_id)["details"]


def test_a_request_in_the_shipped_names_meets_the_renamed_sandbox_as_a_real_account_would(renamed_sandbox) -> None:
    sb = renamed_sandbox
    old = httpx.get(f"{sb.url}/api/v1/dialers/stat", params={"api_token": TOKEN})
    assert old.status_code == 404
    wrong_method = httpx.get(f"{sb.url}/rest/v2/list/has", params={"api_token": TOKEN, "list": 7, "item": "1"})
    assert wrong_method.status_code == 405
    bad_date = httpx.get(f"{sb.url}/rest/v2/calls", params={"api_token": TOKEN, "since": "01.01.2026 00:00:00"})
    assert bad_date.status_code == 422 and "since" in bad_date.json()["errors"]


def test_unknown_answer_fields_are_kept_and_a_missing_required_one_names_its_key(renamed_sandbox, tmp_path) -> None:
    sb = renamed_sandbox
    sb.reset()
    start = datetime.now(UTC) - timedelta(minutes=5)
    sb.add_call(phone="380501112233", direction="in", outcome="answered", duration=5)
    # syncd expects the renamed call id under another name: the record is unreadable, named
    path = tmp_path / "p.toml"
    path.write_text(RENAMED.read_text() .replace('session_id = "call_id"', 'session_id = "uuid"', 1),
                    encoding="utf-8")
    client = make_client(sb.url, token=TOKEN)
    client = type(client)(client.remote, timezone="Europe/Kyiv", profile=load_profile(path))
    unreadable: list[tuple] = []
    calls = list(client.call_log(start, datetime.now(UTC) + timedelta(minutes=1),
                                 on_unreadable=lambda rid, reason, raw: unreadable.append((rid, reason, raw))))
    assert calls == []
    [(rid, reason, raw)] = unreadable
    assert "operations.call_log.record.session_id" in reason and '"uuid"' in reason
    good = make_client(sb.url, token=TOKEN)
    good = type(good)(good.remote, timezone="Europe/Kyiv", profile=load_profile(RENAMED))
    [call] = list(good.call_log(start, datetime.now(UTC) + timedelta(minutes=1)))
    assert call.details["queue_id"] == 1 and str(call.details["session_id"]) == call.session_id  # unmapped kept

    path.write_text(RENAMED.read_text().replace('exists = "found"', 'exists = "present"'), encoding="utf-8")
    client = type(client)(client.remote, timezone="Europe/Kyiv", profile=load_profile(path))
    with pytest.raises(MissingField) as caught:
        client.list_check("7", "380500000000")
    assert caught.value.key == "operations.list_check.response.exists"
    assert "list_check" in str(caught.value) and '"present"' in str(caught.value)
    assert isinstance(MissingRecordField("call_log", "stime", "s", "k"), Exception)


def test_the_json_request_form_carries_the_renamed_names_too(renamed_sandbox) -> None:
    renamed_sandbox.reset()
    client = make_client(renamed_sandbox.url, token=TOKEN, form="json_request")
    client = type(client)(client.remote, timezone="Europe/Kyiv", form="json_request",
                          profile=load_profile(RENAMED))
    task_id = client.create_task(TaskSpec(dialer_id="101", phones=("380501112266",)))
    assert client.remove_task("101", task_id=task_id) == 1
    assert client.list_add("7", ["380509998866"]) == 1 and client.list_check("7", "380509998866")
