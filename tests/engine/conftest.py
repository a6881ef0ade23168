"""Engine fixtures: a migrated state database (SQLite file, or the local PostgreSQL), a config,
the real Oki-Toki sandbox over loopback and an in-memory CRM."""

from __future__ import annotations

import threading
import uuid
from typing import Any, Iterator

import pytest
from sqlalchemy import create_engine, text

from syncd.config import Config
from syncd.engine.build import build_syncer
from syncd.store import open_store

from .fake_crm import FakeCrm

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _pg_url() -> Iterator[str]:
    name = f"syncd_store_test_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        pytest.skip(f"local PostgreSQL not available: {exc}")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state.db'}"
    else:
        yield from _pg_url()


@pytest.fixture
def store(state_url):
    s = open_store(state_url, create=True)
    yield s
    s.close()


def make_config(state_url: str, okitoki_url: str = "http://127.0.0.1:9", token: str = "tok-123456",
                **over: Any) -> Config:
    data: dict[str, Any] = {
        "daemon": {"state_url": state_url},
        "okitoki": {"url": okitoki_url, "api_token": token, "requests_per_minute": 100000,
                    "daily_request_budget": 100000},
        "crm": {"connector": "sql", "options": {}},
        "contacts": {"default_region": "UA", "create_in_okitoki": True, "create_in_crm": True,
                     "fields": {
                         "name": {"crm": "name", "okitoki": "name", "sync": "both", "conflict": "newest"},
                         "email": {"crm": "email", "okitoki": "email", "sync": "both", "conflict": "crm"},
                         "status": {"crm": "status", "okitoki": "details.status", "sync": "to_okitoki"},
                     }},
        "dialer": [{"name": "new-leads", "dialer_id": 101, "when": {"status": ["new", "callback"]},
                    "priority": 1, "ttl": "3d", "region_from_phone": True}],
        "calls": {"to_crm": True, "settle_delay": "0s", "overlap": "10m", "unknown_numbers": "skip",
                  "status_order": ["new", "callback", "contacted", "qualified", "won", "lost"],
                  "outcome_status": {"answered": "contacted", "no_answer": "callback"}},
        "do_not_call": {"crm_field": "do_not_call", "list_id": 7},
    }
    for key, value in over.items():
        section, _, sub = key.partition("__")
        if sub:
            data.setdefault(section, {})[sub] = value
        else:
            data[section] = value
    return Config.model_validate(data)


def cycle_in_threads(syncers: list[Any], cycles: int) -> list[BaseException]:
    """Run ``cycles`` cycles of every syncer at once, each in its own thread (instances
    sharing one store); returns what they raised."""
    errors: list[BaseException] = []

    def run(s):
        try:
            for _ in range(cycles):
                s.cycle()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(s,)) for s in syncers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


@pytest.fixture
def crm() -> FakeCrm:
    return FakeCrm()


@pytest.fixture
def world(state_url, sandbox, crm, tmp_path):
    """(syncer, sandbox, crm): a migrated store, the real sandbox, the fake CRM."""
    open_store(state_url, create=True).close()
    config = make_config(state_url, sandbox.url, sandbox.token)
    syncer = build_syncer(config, crm=crm, state_dir=tmp_path / "crm", instance_id="test")
    yield syncer, sandbox, crm
    syncer.close()
