"""Long calls and calls changed after hangup, between the Oki-Toki sandbox and each LIVE CRM.

Calls of 30 s, 40 min and 3 h ending together, with a daemon restart between the hangup and
the read, reach the CRM once each. The 3 h call then gets its recording link and, later, a
corrected outcome: BottleCRM's interaction is rewritten both times (one interaction still);
Tryton keeps notes read-only (``calls_update=False``), so its note stays as first written,
still one. The daemon's clock and the sandbox's move together, so hours pass in seconds.
"""

from __future__ import annotations

import random
import time
from typing import Any

import pytest

from syncd.config import validate_config_dict
from syncd.engine import build_syncer
from syncd.store import migrate
from tests.engine.test_call_walk import SharedClock, _until_swept

FIELDS = {"name": {"crm": "name", "okitoki": "name", "sync": "both", "conflict": "newest"}}


def _run(sandbox, tmp_path, crm_section: dict[str, Any], crm: Any, contact_fields: dict) -> dict:
    """The scenario; returns {session id: activity text} after the changes."""
    phone = f"+38067{random.randint(1_000_000, 8_999_999):07d}"
    crm.create_contact(contact_fields, [phone])
    clock = SharedClock(sandbox)
    config = validate_config_dict({
        "daemon": {"state_url": f"sqlite:///{tmp_path / 'state.db'}"},
        "okitoki": {"url": sandbox.url, "api_token": sandbox.token, "requests_per_minute": 100000,
                    "daily_request_budget": 100000},
        "crm": crm_section,
        "contacts": {"default_region": "UA", "create_in_okitoki": True, "create_in_crm": False,
                     "fields": FIELDS},
        "calls": {"to_crm": True, "settle_delay": "0s", "unknown_numbers": "skip"},
    }, source="test")
    migrate(config.daemon.state_url)

    def start():
        return build_syncer(config, state_dir=tmp_path / "crm-state", instance_id="e2e", clock=clock)

    syncer = start()
    try:
        digits = phone.lstrip("+")
        deadline = time.monotonic() + 30
        while not any(digits in {p.lstrip("+") for p in c["phones"]} for c in sandbox.state()["contacts"]):
            assert not syncer.cycle().errors
            assert time.monotonic() < deadline, "the CRM contact never reached the sandbox"
            time.sleep(0.3)
        # Session ids of their own: the live CRM outlives this test's sandbox, whose ids restart.
        first = random.randint(10**9, 2 * 10**9)
        ids = [str(sandbox.add_call(phone=digits, direction="in", outcome="answered", duration=s,
                                    record_url=None, session_id=first + i)["session_id"])
               for i, s in enumerate((30, 40 * 60, 3 * 3600))]
        clock.advance(30)
        syncer.pull_okitoki_calls()          # the short one is read; then the daemon stops
        syncer.close()
        clock.advance(15 * 60)
        syncer = start()
        _until_swept(syncer, clock)
        assert {sid: crm.count_activities(sid) for sid in ids} == {sid: 1 for sid in ids}
        sandbox.update_call(int(ids[2]), record_url="https://rec.example/e2e-3h.mp3")
        _until_swept(syncer, clock, polls=2)
        sandbox.update_call(int(ids[2]), result="busy", ctime=0)
        _until_swept(syncer, clock)
        assert {sid: crm.count_activities(sid) for sid in ids} == {sid: 1 for sid in ids}
        return {sid: crm.activity_text(sid) for sid in ids}
    finally:
        syncer.close()


@pytest.mark.e2e
@pytest.mark.bottlecrm
def test_live_bottlecrm_gets_long_calls_once_and_their_later_changes(sandbox, tmp_path, bottlecrm_crm):
    section = bottlecrm_crm.crm_section()
    section["options"] = {**section["options"], "settle": 0}
    text = _run(sandbox, tmp_path, section, bottlecrm_crm, {"name": f"Long Bottle{random.randint(1000, 9999)}"})
    long_one = text[max(text, key=lambda sid: int(sid))]
    assert "https://rec.example/e2e-3h.mp3" in long_one and "busy" in long_one, long_one


@pytest.mark.e2e
@pytest.mark.tryton
def test_live_tryton_gets_long_calls_once_and_keeps_its_read_only_notes(sandbox, tmp_path, tryton_crm):
    text = _run(sandbox, tmp_path, tryton_crm.crm_section(), tryton_crm,
                {"name": f"Long Tryton{random.randint(1000, 9999)}"})
    long_one = text[max(text, key=lambda sid: int(sid))]
    assert "e2e-3h.mp3" not in long_one and "answered" in long_one, long_one
