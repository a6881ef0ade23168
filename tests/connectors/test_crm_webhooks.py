"""CRM webhooks as hints, per vendor, through a running daemon: the fake CRM sends its event
the way the vendor documents it to /events/crm, the connector checks the vendor's
authentication, the daemon reads the named record by id and the push runs at once, so a new
lead has its dialer task within seconds while every poll interval is an hour. A request with
the wrong authentication is refused (401) and reads nothing."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Callable, Iterator

import httpx
import pytest
from sqlalchemy import select

from syncd.daemon import Daemon
from syncd.engine.build import build_syncer
from syncd.notify import Notifier
from syncd.store import open_store
from syncd.store.tables import Run
from tests.engine.conftest import make_config
from tests.fakes._events import (bitrix24_request, hubspot_request, kommo_request, payload_of,
                                 pipedrive_request)
from tests.fakes.bitrix24 import running_bitrix24
from tests.fakes.hubspot import TOKEN as HUBSPOT_TOKEN, running_hubspot
from tests.fakes.kommo import running_kommo
from tests.fakes.pipedrive import API_TOKEN as PIPEDRIVE_TOKEN, running_pipedrive

SECRET = "webhook-secret-0123456789abcdef"


@dataclass
class Vendor:
    name: str
    name_field: str
    running: Callable[[], Any]                        # context manager → fake handle
    options: Callable[[Any], dict[str, Any]]          # fake → [crm.options]
    subscribe: Callable[[Any, str], None]             # fake, listener URL (right auth)
    add_lead: Callable[[Any, str, str], str]          # fake, name, phone → id
    forged: Callable[[str, str], tuple[str, dict[str, str], bytes]]   # url, id → wrong auth


def _kommo_sub(fake: Any) -> str:
    return "acme"


VENDORS = [
    Vendor("bitrix24", "NAME", running_bitrix24,
           lambda f: {"webhook_url": f.webhook_url, "application_token": SECRET},
           lambda f, url: f.state.webhooks.subscribe(url, application_token=SECRET),
           lambda f, name, phone: str(f.state.add_contact((phone,), NAME=name)),
           lambda url, rid: payload_of(bitrix24_request, url, "add", rid, application_token="wrong-token-1")),
    Vendor("hubspot", "firstname", running_hubspot,
           lambda f: {"url": f.url, "token": HUBSPOT_TOKEN, "webhook_secret": SECRET},
           lambda f, url: f.webhooks.subscribe(url, client_secret=SECRET),
           lambda f, name, phone: f.add_contact(firstname=name, phone=phone),
           lambda url, rid: payload_of(hubspot_request, url, "add", rid, client_secret="not-the-secret")),
    Vendor("pipedrive", "name", running_pipedrive,
           lambda f: {"url": f.url, "api_token": PIPEDRIVE_TOKEN, "webhook_user": "syncd",
                      "webhook_password": SECRET},
           lambda f, url: f.webhooks.subscribe(url, user="syncd", password=SECRET),
           lambda f, name, phone: f.add_person(name, [phone]),
           lambda url, rid: payload_of(pipedrive_request, url, "add", rid, user="syncd", password="guess")),
    Vendor("kommo", "name", running_kommo,
           lambda f: {"url": f.url, "token": f.state.token, "webhook_token": SECRET},
           lambda f, url: f.state.webhooks.subscribe(f"{url}?token={SECRET}", subdomain="x"),
           lambda f, name, phone: str(f.state.add_contact(name, (phone,))),
           lambda url, rid: payload_of(kommo_request, f"{url}?token=wrong-token-0123456", "add", rid)),
]


@contextmanager
def running_daemon(vendor: Vendor, sandbox: Any, tmp_path: Any, *, webhooks: bool = True) -> Iterator[Any]:
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    open_store(state_url, create=True).close()
    with vendor.running() as fake:
        options = vendor.options(fake)
        if not webhooks:
            options = {k: v for k, v in options.items() if not k.startswith(("webhook_", "application_"))
                       or k == "webhook_url"}
        config = make_config(
            state_url, sandbox.url, sandbox.token,
            daemon={"state_url": state_url, "http_listen": "127.0.0.1:0", "push_interval": "1h",
                    "housekeeping_interval": "1h", "jitter": "0s", "shutdown_timeout": "5s"},
            okitoki={"url": sandbox.url, "api_token": sandbox.token, "requests_per_minute": 100000,
                     "daily_request_budget": 100000, "poll_interval": "1h"},
            crm={"connector": vendor.name, "poll_interval": "1h", "options": options},
            contacts={"default_region": "UA", "create_in_okitoki": True, "create_in_crm": False,
                      "fields": {"name": {"crm": vendor.name_field, "okitoki": "name", "sync": "both"}}},
            dialer=[{"name": "leads", "dialer_id": 101, "when": {"name": ["Hot Lead"]}, "priority": 1,
                     "ttl": "3d", "region_from_phone": True}],
            do_not_call={}, verify={"interval": "off"})
        syncer = build_syncer(config, state_dir=tmp_path / "crm", instance_id="test")
        daemon = Daemon(syncer, config, notifier=Notifier(None), tick=0.05)
        thread = threading.Thread(target=daemon.run, daemon=True)
        thread.start()
        try:
            # the start-up runs are done (a test then counts the runs its webhook caused)
            _wait(lambda: daemon.web is not None and daemon.web.server.started
                  and _ran(syncer, "push") and _ran(syncer, "pull:crm:contacts"), 15)
            yield daemon, syncer, fake, f"http://127.0.0.1:{daemon.web.port}/events/crm"
        finally:
            daemon.stop()
            thread.join(15)


def _wait(predicate: Callable[[], bool], timeout: float) -> float:
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
    return time.monotonic() - start


def _ran(syncer: Any, job: str) -> int:
    with syncer.store.begin() as conn:
        return len(conn.execute(select(Run.__table__.c.id).where(Run.__table__.c.job == job)).all())


def _tasks(sandbox: Any, phone: str) -> list[dict[str, Any]]:
    return [t for t in sandbox.state()["tasks"] if t["dialer_id"] == 101 and any(phone in p for p in t["phones"])]


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
def test_a_new_lead_reaches_its_dialer_within_3_s_of_the_crm_webhook_with_hour_long_polls(
        vendor, sandbox, tmp_path):
    with running_daemon(vendor, sandbox, tmp_path) as (daemon, syncer, fake, url):
        vendor.subscribe(fake, url)
        vendor.add_lead(fake, "Hot Lead", "+380671239901")
        took = _wait(lambda: _tasks(sandbox, "380671239901"), 10)
        assert took <= 3.0, f"the task took {took:.1f} s"
        assert _ran(syncer, "pull:crm:hinted") >= 1
        assert _ran(syncer, "pull:crm:contacts") == 1      # the start-up poll only: no poll did it
        metrics = httpx.get(url.replace("/events/crm", "/metrics"), timeout=10).text
        assert 'syncd_latency_seconds_count{flow="lead_to_task"} 1.0' in metrics
        assert 'syncd_crm_webhook_events_total{result="hint"}' in metrics


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
def test_a_webhook_with_the_wrong_authentication_is_refused_and_reads_nothing(vendor, sandbox, tmp_path):
    with running_daemon(vendor, sandbox, tmp_path) as (daemon, syncer, fake, url):
        rid = vendor.add_lead(fake, "Hot Lead", "+380671239902")   # not subscribed: no event
        target, headers, body = vendor.forged(url, rid)
        r = httpx.post(target, headers=headers, content=body, timeout=10)
        assert r.status_code == 401
        time.sleep(0.3)
        assert _ran(syncer, "pull:crm:hinted") == 0 and syncer._crm_hinted == set()
        assert daemon.metrics.crm_events.labels(result="unauthorized")._value.get() == 1


@pytest.mark.parametrize("vendor", VENDORS, ids=lambda v: v.name)
def test_webhooks_are_refused_with_404_until_their_secret_is_configured(vendor, sandbox, tmp_path):
    with running_daemon(vendor, sandbox, tmp_path, webhooks=False) as (daemon, syncer, fake, url):
        target, headers, body = vendor.forged(url, "1")
        assert httpx.post(target, headers=headers, content=body, timeout=10).status_code == 404


def test_a_hubspot_signature_older_than_5_minutes_is_refused(sandbox, tmp_path):
    vendor = VENDORS[1]
    with running_daemon(vendor, sandbox, tmp_path) as (daemon, syncer, fake, url):
        rid = vendor.add_lead(fake, "Hot Lead", "+380671239903")
        stale = int((datetime.now(UTC) - timedelta(minutes=6)).timestamp() * 1000)
        target, headers, body = payload_of(hubspot_request, url, "add", rid, client_secret=SECRET,
                                           timestamp_ms=stale)
        assert httpx.post(target, headers=headers, content=body, timeout=10).status_code == 401
        fresh = payload_of(hubspot_request, url, "add", rid, client_secret=SECRET)
        tampered = fresh[2].replace(rid.encode(), b"999999")
        assert httpx.post(target, headers=fresh[1], content=tampered, timeout=10).status_code == 401
        assert httpx.post(target, headers=fresh[1], content=fresh[2], timeout=10).status_code == 202


def test_a_deleted_record_named_by_a_webhook_is_recorded_gone_only_because_the_api_says_so(sandbox, tmp_path):
    vendor = VENDORS[2]   # pipedrive
    with running_daemon(vendor, sandbox, tmp_path) as (daemon, syncer, fake, url):
        vendor.subscribe(fake, url)
        pid = vendor.add_lead(fake, "Hot Lead", "+380671239904")
        _wait(lambda: _tasks(sandbox, "380671239904"), 10)
        # A forged-looking but authentic "delete" of a record that still exists changes nothing.
        target, headers, body = payload_of(pipedrive_request, url, "delete", pid, user="syncd", password=SECRET)
        assert httpx.post(target, headers=headers, content=body, timeout=10).status_code == 202
        time.sleep(1.0)
        assert [t for t in _tasks(sandbox, "380671239904") if t["status"] == "pending"]
        fake.delete_person(pid)          # now really gone: the event's read confirms it
        _wait(lambda: not [t for t in _tasks(sandbox, "380671239904") if t["status"] == "pending"], 10)
