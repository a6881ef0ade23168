"""Long calls and calls that change after they were logged, through the daemon's engine, the
Oki-Toki sandbox and each fake CRM server (built from config, over loopback HTTP).

Calls of 30 s, 40 min and 3 h ending together reach each CRM once; a recording link and a
corrected outcome that come later rewrite the activity where the CRM allows it, and leave it
alone (still one activity) where it does not (Pipedrive's call logs cannot be changed).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

import pytest

from syncd.engine.build import build_syncer
from syncd.store import open_store
from tests.engine.conftest import make_config
from tests.engine.test_call_walk import CALLS, SharedClock, _call, _until_swept
from tests.fakes.bitrix24 import running_bitrix24
from tests.fakes.hubspot import TOKEN, running_hubspot
from tests.fakes.kommo import running_kommo
from tests.fakes.pipedrive import API_TOKEN, running_pipedrive

NAME = {"name": {"crm": "name", "okitoki": "name", "sync": "both", "conflict": "newest"}}


@contextlib.contextmanager
def _hubspot() -> Iterator[tuple[dict, Callable[[str], list[Any]], dict]]:
    with running_hubspot() as fake:
        yield ({"url": fake.url, "token": TOKEN}, lambda sid: [c.properties for c in fake.calls_for_session(sid)],
               {"name": {"crm": "firstname", "okitoki": "name"}})


@contextlib.contextmanager
def _kommo():
    with running_kommo() as fake:
        def notes(sid):
            with fake.state.lock:
                return [dict(c["item"]) for c in fake.state.calls.values() if c["item"].get("uniq") == f"oki-toki:{sid}"]
        yield {"url": fake.url, "token": fake.state.token}, notes, NAME


@contextlib.contextmanager
def _bitrix24():
    with running_bitrix24() as fake:
        def activities(sid):
            with fake.state.lock:
                return [dict(a) for a in fake.state.activities.values() if f"[oki-toki:{sid}]" in str(a.get("SUBJECT"))]
        yield {"webhook_url": fake.webhook_url}, activities, {"name": {"crm": "NAME", "okitoki": "name"}}


@contextlib.contextmanager
def _pipedrive():
    with running_pipedrive() as fake:
        yield {"url": fake.url, "api_token": API_TOKEN}, fake.logs_for_session, NAME


CRMS = {"hubspot": (_hubspot, True), "kommo": (_kommo, True), "bitrix24": (_bitrix24, True),
        "pipedrive": (_pipedrive, False)}


@pytest.mark.parametrize("connector", sorted(CRMS))
def test_long_calls_arrive_once_and_later_changes_follow_where_the_crm_allows(connector, sandbox, tmp_path):
    start, updates = CRMS[connector]
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    open_store(state_url, create=True).close()
    clock = SharedClock(sandbox)
    with start() as (options, activities, fields):
        config = make_config(state_url, sandbox.url, sandbox.token, calls=CALLS,
                             crm={"connector": connector, "options": options},
                             contacts={"default_region": "UA", "create_in_okitoki": False,
                                       "create_in_crm": True, "fields": fields},
                             do_not_call={}, dialer=[])
        syncer = build_syncer(config, state_dir=tmp_path / "crm", instance_id="t", clock=clock)
        try:
            sandbox.seed(contacts=[{"name": "Long Caller", "phones": ["380675550022"]}])
            assert not syncer.cycle().errors
            clock.advance(60)
            assert not syncer.cycle().errors          # the created contact is read back, linked
            ids = [_call(sandbox, "380675550022", s, record_url=None) for s in (30, 40 * 60, 3 * 3600)]
            _until_swept(syncer, clock)
            assert {sid: len(activities(sid)) for sid in ids} == {sid: 1 for sid in ids}
            url = "https://rec.example/3h.mp3"
            sandbox.update_call(int(ids[2]), record_url=url)
            _until_swept(syncer, clock, polls=2)
            sandbox.update_call(int(ids[2]), result="busy", ctime=0)
            _until_swept(syncer, clock)
            [activity] = activities(ids[2])
            assert (url in repr(activity)) is updates, activity
            assert {sid: len(activities(sid)) for sid in ids} == {sid: 1 for sid in ids}
        finally:
            syncer.close()
