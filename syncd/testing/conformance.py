"""The connector conformance suite: every connector, ours or a third party's, runs it.

Use it in three steps (see ``docs/connectors/writing.md``)::

    # tests/test_conformance.py of your connector
    import pytest
    from syncd.testing.conformance import ConnectorConformance

    @pytest.fixture
    def conformance_crm(tmp_path):
        crm = MyCrmBackend(tmp_path)          # satisfies syncd.testing.contract.ConformanceCrm
        yield crm
        crm.stop()

    class TestMyConnector(ConnectorConformance):
        pass

Each test builds connectors through ``conformance_crm.connector()`` (a restart is simply
another call), changes the CRM behind their back through the same object, and checks the
semantics of :mod:`syncd.connector`. A test needing a capability the connector does not declare,
or an ability the backend does not declare, is skipped with a reason naming what is missing.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import BaseModel

from ..connector import Capabilities, CrmConnector
from ..errors import AuthenticationError, Throttled
from ..model import Call, CallDirection, CallOutcome, ContactWrite, Cursor
from .contract import ABILITIES, abilities, option
from .secrets_check import assert_no_secrets, capture_everything
from .values import RecordValuesConformance
from .walk import (fresh_phone, international_format, phone_set,
                   same_nsn_other_country, settle, unique_text, walk, walk_to_end)

__all__ = ["ConnectorConformance"]


class ConnectorConformance(RecordValuesConformance):
    """Subclass this in a test module that provides the ``conformance_crm`` fixture."""

    page_size = 2  # small pages so that every walk crosses page boundaries

    @pytest.fixture(autouse=True)
    def _conformance_backend(self, conformance_crm: Any):
        self.crm = conformance_crm
        self._opened: list[CrmConnector] = []
        yield
        for connector in self._opened:
            try:
                connector.close()
            except Exception:  # closing must not hide the test's own outcome
                pass

    # -- helpers --------------------------------------------------------------------------
    def connect(self) -> CrmConnector:
        connector = self.crm.connector()
        self._opened.append(connector)
        return connector

    def require(self, ability: str) -> None:
        if ability not in abilities(self.crm):
            pytest.skip(f"{type(self.crm).__name__} does not declare the ability '{ability}' "
                        f"({ABILITIES[ability]})")

    @staticmethod
    def require_capability(connector: CrmConnector, flag: str) -> None:
        if not getattr(connector.capabilities, flag):
            pytest.skip(f"connector '{connector.name}' declares {flag}=False")

    def settle(self) -> None:
        settle(float(option(self.crm, "settle_seconds", 0.0)))

    def seeded(self, n: int) -> list[str]:
        """``n`` contacts created behind the connector's back, one phone each."""
        return [self.crm.create_contact({self.crm.text_field: unique_text()}, [fresh_phone()])
                for _ in range(n)]

    def fetch_one(self, connector: CrmConnector, contact_id: str):
        found = [c for c in connector.fetch_contacts([contact_id]) if c.id == contact_id]
        assert len(found) == 1, f"fetch_contacts([{contact_id!r}]) returned {len(found)} matches"
        return found[0]

    @staticmethod
    def assert_each_once(seen: list[str], expected: list[str], what: str) -> None:
        counts = Counter(seen)
        repeated = sorted(i for i, n in counts.items() if n > 1)
        missing = [i for i in expected if i not in counts]
        assert not repeated, f"{what}: returned more than once: {repeated}"
        assert not missing, f"{what}: never returned: {missing}"

    # -- shape ----------------------------------------------------------------------------
    def test_connector_declares_the_protocol(self):
        connector = self.connect()
        assert isinstance(connector, CrmConnector)
        assert isinstance(type(connector).name, str) and type(connector).name
        assert issubclass(type(connector).Options, BaseModel)
        assert type(connector).Options.model_config.get("extra") == "forbid", \
            "Options must refuse unknown keys (model_config extra='forbid')"
        caps = connector.capabilities
        assert isinstance(caps, Capabilities)
        assert min(caps.read_batch_size, caps.write_batch_size, caps.calls_batch_size) > 0
        if caps.calls_update:
            assert callable(getattr(connector, "update_calls", None)), \
                "capabilities.calls_update is True but the connector has no update_calls"

    def test_health_check_passes_on_a_working_crm(self):
        self.connect().health_check()

    # -- change detection -----------------------------------------------------------------
    def test_changed_since_returns_every_change_exactly_once_across_pages(self):
        connector = self.connect()
        start = walk_to_end(connector)
        self.settle()
        ids = self.seeded(7)
        self.settle()
        seen, end, pages = walk(connector, start, self.page_size)
        self.assert_each_once([c.id for c in seen], ids, "changed-since walk")
        assert pages >= 4, f"7 changes in pages of {self.page_size} took only {pages} page(s)"
        stamps = [c.updated_at for c in seen if c.id in ids]
        assert all(s is not None and s.tzinfo is not None for s in stamps), \
            "changed contacts must carry the server's timezone-aware updated_at"
        ordered = [c.updated_at for c in seen if c.updated_at is not None]
        assert ordered == sorted(ordered), "changed_contacts must ascend by updated_at"
        again, _, _ = walk(connector, end, self.page_size)
        assert not {c.id for c in again} & set(ids), "a walk from the end cursor repeated changes"

    def test_equal_timestamps_at_page_boundaries_lose_and_repeat_nothing(self):
        self.require("equal_timestamps")
        connector = self.connect()
        start = walk_to_end(connector)
        self.settle()
        ids = self.seeded(5)
        self.crm.force_equal_updated_at(ids)
        self.settle()
        for limit in (1, 2, 3):
            seen, _, _ = walk(connector, start, limit)
            self.assert_each_once([c.id for c in seen], ids, f"walk with limit={limit}")
            stamps = {c.updated_at for c in seen if c.id in ids}
            assert len(stamps) == 1, f"the backend did not make updated_at equal: {stamps}"

    def _walk_all(self, connector: CrmConnector, after: Cursor, limit: int):
        """(contacts, ids reported unreadable) of a walk from ``after`` to its end."""
        contacts, unreadable, cursor = [], [], after
        for _ in range(10_000):
            page = connector.changed_contacts(cursor, limit)
            assert len(page.contacts) + len(page.unreadable) <= limit, "a page larger than its limit"
            contacts += page.contacts
            unreadable += page.unreadable
            assert not page.more or page.next != cursor or page.contacts, "no progress"
            cursor = page.next
            if not page.more:
                return contacts, unreadable
        raise AssertionError("the walk never ended")

    def test_an_unreadable_record_fails_alone_and_the_walk_goes_on(self):
        self.require("unreadable_record")
        connector = self.connect()
        start = walk_to_end(connector)
        self.settle()
        ids = self.seeded(5)
        self.crm.make_unreadable(ids[2])
        self.settle()
        for limit in (1, 2, 3):
            seen, bad = self._walk_all(connector, start, limit)
            good = [i for i in ids if i != ids[2]]
            self.assert_each_once([c.id for c in seen if c.id in ids], good, f"walk with limit={limit}")
            assert ids[2] not in {c.id for c in seen}, "the unreadable contact came back as readable"
            assert [u.id for u in bad] == [ids[2]], f"unreadable not reported exactly once: {bad}"
            assert bad[0].reason, "an unreadable record needs a reason"

    def test_records_change_detection_cannot_see_are_counted(self):
        kinds = [k for k in ("null_change_time", "bad_change_time") if k in abilities(self.crm)]
        if not kinds:
            self.require("null_change_time")
        connector = self.connect()
        probe = getattr(connector, "untracked_contacts", None)
        assert probe is not None, "a connector whose CRM can hide rows from change detection " \
                                  "must report them (untracked_contacts)"
        before = probe()
        ids = self.seeded(3)
        if "null_change_time" in kinds:
            self.crm.set_change_time(ids[0], None)
        if "bad_change_time" in kinds:
            self.crm.set_change_time(ids[1], "not a time")
        seen, _ = self._walk_all(connector, Cursor(), 2)
        assert ids[2] in {c.id for c in seen}
        after = probe()
        if "null_change_time" in kinds:
            assert ids[0] not in {c.id for c in seen} and after.null == before.null + 1
        if "bad_change_time" in kinds:
            assert ids[1] not in {c.id for c in seen}
            assert after.unreadable_total == before.unreadable_total + 1
            assert ids[1] in {u.id for u in after.unreadable}

    def test_change_times_spelt_differently_walk_in_time_order_each_once(self):
        self.require("time_spellings")
        connector = self.connect()
        start = walk_to_end(connector)
        self.settle()
        ids = self.seeded(6)
        self.crm.respell_change_times(ids)
        self.settle()
        for limit in (1, 2, 4):
            seen, _, _ = walk(connector, start, limit)
            self.assert_each_once([c.id for c in seen], ids, f"walk with limit={limit}")
            stamps = [c.updated_at for c in seen]
            assert stamps == sorted(stamps), "not in time order"

    def test_cursor_resumes_after_a_restart(self):
        first = self.connect()
        start = walk_to_end(first)
        self.settle()
        ids = self.seeded(5)
        self.settle()
        page = first.changed_contacts(start, self.page_size)
        assert page.more, "5 new changes fit in one page of 2?"
        first.close()
        second = self.connect()  # a new process: only the cursor survives
        rest, end, _ = walk(second, page.next, self.page_size)
        self.assert_each_once([c.id for c in page.contacts + rest], ids, "walk split by a restart")
        self.settle()
        value = unique_text("edited")
        self.crm.update_contact(ids[0], {self.crm.text_field: value})
        self.settle()
        later, _, _ = walk(self.connect(), end, self.page_size)
        edited = [c for c in later if c.id == ids[0]]
        assert len(edited) == 1, "a contact edited after the cursor must come back exactly once"
        assert edited[0].fields.get(self.crm.text_field) == value

    def test_own_writes_are_seen_by_changed_since(self):
        connector = self.connect()
        self.require_capability(connector, "contacts_write")
        (contact_id,) = self.seeded(1)
        self.settle()
        start = walk_to_end(connector)
        self.settle()
        value = unique_text("written")
        (result,) = connector.upsert_contacts([ContactWrite(
            key=unique_text("key"), id=contact_id, fields={self.crm.text_field: value})])
        assert result.ok, result.error
        self.settle()
        seen, _, _ = walk(connector, start, self.page_size)
        mine = [c for c in seen if c.id == contact_id]
        assert len(mine) == 1, "a write by the connector must move the contact's updated_at"
        assert mine[0].fields.get(self.crm.text_field) == value

    # -- reads ----------------------------------------------------------------------------
    def test_fetch_contacts_omits_missing_ids(self):
        connector = self.connect()
        (contact_id,) = self.seeded(1)
        self.settle()
        found = connector.fetch_contacts([contact_id, self.crm.missing_id])
        assert [c.id for c in found] == [contact_id]

    def test_empty_requests_are_answered_with_empty_lists(self):
        connector = self.connect()
        assert connector.fetch_contacts([]) == []
        assert connector.upsert_contacts([]) == []
        if connector.capabilities.calls_write:
            assert connector.log_calls([]) == []

    def test_find_by_phone_matches_exactly_after_normalising(self):
        connector = self.connect()
        ours = fresh_phone("UA")
        trap = same_nsn_other_country(ours)  # same national digits, another country
        stored = international_format(ours) if "raw_phone_formats" in abilities(self.crm) else ours
        wanted = self.crm.create_contact({self.crm.text_field: unique_text()}, [stored])
        if trap:
            self.crm.create_contact({self.crm.text_field: unique_text()}, [trap])
        self.settle()
        found = connector.find_by_phone(ours)
        assert [c.id for c in found] == [wanted], \
            f"find_by_phone({ours}) with {stored!r} and trap {trap!r} stored gave {found}"
        assert connector.find_by_phone(fresh_phone("PL")) == []

    # -- writes ---------------------------------------------------------------------------
    def test_create_then_update_repeated_is_idempotent(self):
        connector = self.connect()
        self.require_capability(connector, "contacts_create")
        phones = (fresh_phone("UA"), fresh_phone("PL"))[: max(1, option(self.crm, "max_phones", 2))]
        create = ContactWrite(key=unique_text("create"), id=None,
                              fields={self.crm.text_field: unique_text()}, phones=phones)
        (made,) = connector.upsert_contacts([create])
        assert made.ok and made.id, made.error
        # The outbox never learned the outcome: after a restart it sends the create again.
        retry = self.connect()
        (again,) = retry.upsert_contacts([create])
        assert again.ok and again.id == made.id, \
            f"a retried create (same key) made a second contact: {made.id} then {again.id}"
        update = ContactWrite(key=unique_text("update"), id=made.id,
                              fields={self.crm.text_field: unique_text("v2")}, phones=phones)
        for attempt in (retry, self.connect()):
            (done,) = attempt.upsert_contacts([update])
            assert done.ok and done.id == made.id, done.error
        self.settle()
        matches = self.connect().find_by_phone(phones[0])
        assert [c.id for c in matches] == [made.id], f"duplicates after repeats: {matches}"
        assert phone_set(matches[0].phones) == phone_set(phones), "phones duplicated or lost"
        assert matches[0].fields.get(self.crm.text_field) == update.fields[self.crm.text_field]

    def test_several_phones_per_contact_round_trip(self):
        connector = self.connect()
        self.require_capability(connector, "contacts_write")
        n = min(3, int(option(self.crm, "max_phones", 2)))
        if n < 2:
            pytest.skip(f"{type(self.crm).__name__}.max_phones={n}: one phone per contact")
        phones = [fresh_phone(c) for c in ("UA", "PL", "MX")[:n]]
        contact_id = self.crm.create_contact({self.crm.text_field: unique_text()}, phones)
        self.settle()
        assert phone_set(self.fetch_one(connector, contact_id).phones) == phone_set(phones)
        replaced = (phones[-1], fresh_phone("UA"))
        for _ in range(2):  # the same replacement twice must not append copies
            (r,) = connector.upsert_contacts([ContactWrite(key=unique_text("k"), id=contact_id,
                                                           phones=replaced)])
            assert r.ok, r.error
        assert phone_set(self.fetch_one(connector, contact_id).phones) == phone_set(replaced)
        (r,) = connector.upsert_contacts([ContactWrite(
            key=unique_text("k"), id=contact_id, fields={self.crm.text_field: unique_text()})])
        assert r.ok, r.error
        assert phone_set(self.fetch_one(connector, contact_id).phones) == phone_set(replaced), \
            "phones=None must leave the phones alone"

    def test_a_failing_record_does_not_sink_the_batch(self):
        connector = self.connect()
        self.require_capability(connector, "contacts_create")
        tf = self.crm.text_field
        writes = [ContactWrite(key=unique_text("good1"), id=None, fields={tf: unique_text()},
                               phones=(fresh_phone(),)),
                  ContactWrite(key=unique_text("missing"), id=self.crm.missing_id,
                               fields={tf: unique_text()})]
        if "invalid_value" in abilities(self.crm):
            writes.append(ContactWrite(key=unique_text("invalid"), id=None,
                                       fields=dict(self.crm.invalid_fields()),
                                       phones=(fresh_phone(),)))
        writes.append(ContactWrite(key=unique_text("good2"), id=None, fields={tf: unique_text()},
                                   phones=(fresh_phone(),)))
        results = connector.upsert_contacts(writes)
        assert [r.key for r in results] == [w.key for w in writes], "one result per write, in order"
        good, bad = [results[0], results[-1]], results[1:-1]
        assert all(r.ok and r.id for r in good), [r.error for r in good]
        for r in bad:
            assert not r.ok and r.error, f"{r.key} should have failed: {r}"
        assert not bad[0].retriable, "an update of a missing contact cannot succeed on retry"
        self.settle()
        assert {c.id for c in connector.fetch_contacts([r.id for r in good])} == {r.id for r in good}

    def test_do_not_call_flag_round_trips(self):
        connector = self.connect()
        self.require_capability(connector, "do_not_call")
        field = option(self.crm, "do_not_call_field", None)
        if not field:
            pytest.skip(f"{type(self.crm).__name__} names no do_not_call_field")
        (contact_id,) = self.seeded(1)
        for flag in (True, False):
            (r,) = connector.upsert_contacts([ContactWrite(key=unique_text("dnc"), id=contact_id,
                                                           fields={field: flag})])
            assert r.ok, r.error
            assert bool(self.fetch_one(connector, contact_id).fields.get(field)) is flag

    def test_deleted_contact_is_absent_or_marked_deleted(self):
        self.require("delete")
        connector = self.connect()
        (contact_id,) = self.seeded(1)
        self.settle()
        self.crm.delete_contact(contact_id)
        self.settle()
        assert all(c.deleted for c in connector.fetch_contacts([contact_id]))

    def test_delete_contacts_deletes_and_a_repeat_is_harmless(self):
        connector = self.connect()
        self.require_capability(connector, "contacts_delete")
        gone, kept = self.seeded(2)
        self.settle()
        results = connector.delete_contacts([gone])
        assert [(r.key, r.ok) for r in results] == [(gone, True)], results
        assert [r.ok for r in connector.delete_contacts([gone])] == [True]   # already gone
        self.settle()
        assert all(c.deleted for c in connector.fetch_contacts([gone]))
        assert not self.fetch_one(connector, kept).deleted

    # -- calls ----------------------------------------------------------------------------
    def _call(self, contact_id: str | None, phone: str) -> Call:
        started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=3)
        return Call(session_id=str(int(unique_text("")[1:], 16) % 10**12), phone=phone,
                    direction=CallDirection.OUTBOUND, started_at=started, duration_s=42,
                    talk_s=30, outcome=CallOutcome.ANSWERED, agent="conformance",
                    contact_id=contact_id)

    def _logged_twice(self) -> tuple[Call, str | None]:
        connector = self.connect()
        self.require_capability(connector, "calls_write")
        phone = fresh_phone()
        contact_id = self.crm.create_contact({self.crm.text_field: unique_text()}, [phone])
        call = self._call(contact_id, phone)
        (first,) = connector.log_calls([call])
        assert first.ok and first.key == call.session_id, first.error
        second = self.connect().log_calls([call, call])  # after a restart, and twice in a batch
        assert [r.key for r in second] == [call.session_id] * 2
        assert all(r.ok for r in second), [r.error for r in second]
        if first.id is not None:
            assert {r.id for r in second} == {first.id}, "a repeated call got another activity id"
        return call, first.id

    def test_logging_the_same_call_twice_answers_the_same_id(self):
        self._logged_twice()

    def test_logging_the_same_call_twice_leaves_one_activity(self):
        self.require("count_activities")
        call, _ = self._logged_twice()
        self.settle()
        assert self.crm.count_activities(call.session_id) == 1

    def test_updating_a_logged_call_rewrites_its_activity_once_and_a_repeat_changes_nothing(self):
        call, first_id = self._logged_twice()
        connector = self.connect()
        self.require_capability(connector, "calls_update")
        url = f"https://rec.example/{unique_text('r')}.mp3"
        changed = replace(call, recording_url=url, outcome=CallOutcome.NO_ANSWER, talk_s=0,
                          duration_s=call.duration_s + 17, agent="conformance-2")
        ids = {call.session_id: first_id} if first_id else {}
        (r,) = connector.update_calls([changed], ids)
        assert r.ok and r.key == call.session_id, r.error
        (again,) = self.connect().update_calls([changed], {})   # after a restart, no id known
        assert again.ok, again.error
        if first_id is not None:
            assert {r.id, again.id} <= {first_id, None}, "an update answered another activity"
        self.settle()
        if "count_activities" in abilities(self.crm):
            assert self.crm.count_activities(call.session_id) == 1, "an update made a new activity"
        if "activity_text" in abilities(self.crm):
            text = self.crm.activity_text(call.session_id)
            assert url in text, f"the recording link is not on the activity: {text[:300]}"
            assert str(changed.duration_s) in text, f"the new duration is not on the activity: {text[:300]}"

    # -- failures of the CRM as a whole ---------------------------------------------------
    def test_throttling_surfaces_as_throttled_with_a_readable_message(self):
        self.require("throttle")
        with self.crm.throttling():
            connector = self.connect()
            with pytest.raises(Throttled) as caught:
                connector.health_check()
        assert caught.value.retry_after is None or caught.value.retry_after >= timedelta(0)
        _assert_readable(str(caught.value), self.crm.secrets)

    def test_auth_failure_surfaces_as_authentication_error_with_a_readable_message(self):
        self.require("auth_failure")
        connector = self.crm.unauthorised_connector()
        self._opened.append(connector)
        with pytest.raises(AuthenticationError) as caught:
            connector.health_check()
        _assert_readable(str(caught.value), self.crm.secrets)

    def test_secrets_never_reach_logs_or_errors(self, caplog):
        texts: list[str] = []
        with capture_everything(caplog) as captured:
            connector = self.connect()
            connector.health_check()
            walk(connector, Cursor(), 50)
            texts += [r.error or "" for r in connector.upsert_contacts([ContactWrite(
                key=unique_text("k"), id=self.crm.missing_id, fields={self.crm.text_field: "x"})])]
            connector.find_by_phone(fresh_phone())
            if "auth_failure" in abilities(self.crm):
                bad = self.crm.unauthorised_connector()
                self._opened.append(bad)
                with pytest.raises(AuthenticationError) as caught:
                    bad.health_check()
                texts.append(str(caught.value))
            if "throttle" in abilities(self.crm):
                with self.crm.throttling():
                    with pytest.raises(Throttled) as throttled:
                        self.connect().health_check()
                texts.append(str(throttled.value))
        assert_no_secrets(self.crm.secrets, texts + captured())


def _assert_readable(message: str, secrets: Any) -> None:
    assert message.strip(), "the error has no message"
    assert len(message) < 1000, f"the error message is a wall of text: {message[:200]}..."
    assert "<html" not in message.lower() and "Traceback" not in message, message
    assert_no_secrets(secrets, [message])
