"""SQL connector: options, schema checks against the live database, capabilities, calls DDL."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from connectors.sql import CALL_COLUMNS, SqlConnector, SqlOptions
from syncd.connector import load_connector
from syncd.errors import ConfigError
from syncd.redact import redact
from syncd.testing.context import connector_context


def make(db, tmp_path, *, fields=("name",), dnc=None, **options):
    ctx = connector_context(tmp_path / "state", field_names=fields, do_not_call_field=dnc)
    return SqlConnector(SqlOptions(url=db.url, **options), ctx)


@pytest.fixture
def crm(sql_crm):
    return sql_crm


def columns(db, table="contacts"):
    return {c["name"]: str(c["type"]) for c in sa.inspect(db.engine()).get_columns(table)}


# -- options -------------------------------------------------------------------------------
def test_entry_point_sql_names_the_connector():
    assert load_connector("sql") is SqlConnector


def test_unknown_option_is_refused():
    with pytest.raises(ValidationError, match="extra"):
        SqlOptions(url="sqlite:///x.db", contacts_tabel="people")


def test_bad_url_is_refused_without_echoing_its_password():
    with pytest.raises(ValidationError) as caught:
        SqlOptions(url="nonsense-with-Pw-9f8e7d6c")
    assert "is not a SQLAlchemy database URL" in str(caught.value)
    assert all("Pw-9f8e7d6c" not in e["msg"] for e in caught.value.errors())


def test_password_in_the_url_is_registered_as_a_secret():
    SqlOptions(url="postgresql+psycopg://u:Reg1stered-pw-42@127.0.0.1/db")
    assert "Reg1stered-pw-42" not in redact("failed for u:Reg1stered-pw-42@127.0.0.1")


def test_a_phone_column_named_twice_is_refused():
    with pytest.raises(ValidationError, match="twice"):
        SqlOptions(url="sqlite:///x.db", phone_columns=["phone", "phone"])


# -- schema checks -------------------------------------------------------------------------
def test_missing_contacts_table_names_the_option_and_lists_tables(crm, tmp_path):
    with pytest.raises(ConfigError) as caught:
        make(crm, tmp_path, contacts_table="people").health_check()
    text = str(caught.value)
    assert 'crm.options.contacts_table: table "people" does not exist' in text
    assert "contacts" in text


def test_every_bad_column_is_reported_at_once(crm, tmp_path):
    connector = make(crm, tmp_path, fields=("name", "nickname"), dnc="dnc",
                     id_column="pk", updated_at_column="modified", phone_columns=["phone", "fax"])
    with pytest.raises(ConfigError) as caught:
        connector.health_check()
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == [
        "crm.options.id_column", "crm.options.updated_at_column", "crm.options.phone_columns",
        "contacts.fields", "do_not_call.crm_field"]
    assert all("(columns: id, name," in p for p in problems)


def test_updated_at_must_be_a_date_time_column(crm, tmp_path):
    with pytest.raises(ConfigError, match='"name" is .*not a date-time column'):
        make(crm, tmp_path, updated_at_column="name").health_check()


def test_table_names_are_never_turned_into_sql(crm, tmp_path):
    hostile = "contacts; DROP TABLE contacts; --"
    with pytest.raises(ConfigError, match="does not exist"):
        make(crm, tmp_path, contacts_table=hostile).health_check()
    assert "contacts" in sa.inspect(crm.engine()).get_table_names()


def test_health_check_notices_a_table_dropped_after_start(crm, tmp_path):
    connector = make(crm, tmp_path)
    connector.health_check()
    with crm.engine().begin() as conn:
        conn.execute(sa.text("DROP TABLE contacts"))
    with pytest.raises(ConfigError, match='"contacts" no longer exists'):
        connector.health_check()


# -- capabilities --------------------------------------------------------------------------
def test_without_a_calls_table_calls_are_not_declared_and_check_says_why(crm, tmp_path):
    connector = make(crm, tmp_path)
    caps = connector.capabilities
    assert not caps.calls_write and not caps.do_not_call and caps.contacts_create
    assert any("create_calls_table" in note for note in caps.notes)
    assert "calls" not in sa.inspect(crm.engine()).get_table_names()


def test_calls_table_is_created_on_request_with_the_documented_columns(crm, tmp_path):
    before = columns(crm)
    connector = make(crm, tmp_path, dnc="do_not_call", create_calls_table=True)
    assert connector.capabilities.calls_write and connector.capabilities.do_not_call
    made = columns(crm, "calls")
    assert set(CALL_COLUMNS) <= set(made)
    assert columns(crm) == before, "the contacts table must never be altered"


def test_an_existing_calls_table_without_session_id_is_a_config_error(crm, tmp_path):
    sa.Table("calls", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True),
             sa.Column("phone", sa.String(32))).create(crm.engine())
    with pytest.raises(ConfigError, match='no "session_id" column'):
        make(crm, tmp_path).health_check()


def test_a_text_id_without_default_cannot_create(sql_db, tmp_path):
    sa.Table("contacts", sa.MetaData(), sa.Column("id", sa.String(36), primary_key=True),
             sa.Column("name", sa.String(100)), sa.Column("phone", sa.String(64)),
             sa.Column("updated_at", sa.DateTime)).create(sql_db.engine())
    connector = make(sql_db, tmp_path)
    assert not connector.capabilities.contacts_create
    from syncd.model import ContactWrite
    (result,) = connector.upsert_contacts([ContactWrite(key="k", id=None, fields={"name": "x"})])
    assert not result.ok and "cannot create" in result.error


def test_the_class_declares_what_a_suitable_schema_allows_for_offline_checks():
    caps = SqlConnector.capabilities
    assert caps.calls_write and caps.do_not_call and caps.contacts_create and caps.contacts_write
