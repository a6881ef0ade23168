"""The Bitrix24 connector runs the connector conformance suite against the fake portal."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from connectors.bitrix24 import Bitrix24Connector, Bitrix24Options
from connectors.bitrix24._calls import marker
from syncd.testing.conformance import ConnectorConformance
from syncd.testing.context import connector_context
from tests.fakes.bitrix24 import RunningBitrix24, running_bitrix24
from tests.fakes.clock import TickingClock

WRONG_SECRET = "wrongconformance0000"


class Bitrix24Backend:
    """The fake portal plus connectors configured for it (see syncd.testing.contract)."""

    text_field = "NAME"
    missing_id = "999999"
    abilities = frozenset({"delete", "equal_timestamps", "count_activities", "activity_text", "throttle",
                           "auth_failure", "raw_phone_formats"})
    max_phones = 3
    settle_seconds = 0.0           # the fake's ticking clock gives every change its own second
    do_not_call_field = "UF_CRM_DNC"

    def __init__(self, fake: RunningBitrix24, state_dir) -> None:
        self.fake, self.state_dir = fake, state_dir
        self.secrets = (fake.state.webhook_secret, WRONG_SECRET)

    def connector(self, webhook_url: str | None = None) -> Bitrix24Connector:
        ctx = connector_context(self.state_dir, field_names=("NAME", "LAST_NAME", "EMAIL"),
                                do_not_call_field=self.do_not_call_field)
        return Bitrix24Connector(Bitrix24Options(webhook_url=webhook_url or self.fake.webhook_url), ctx)

    def create_contact(self, fields: Mapping[str, Any], phones: Sequence[str]) -> str:
        return str(self.fake.state.add_contact(tuple(phones), **_bx(fields)))

    def update_contact(self, contact_id: str, fields: Mapping[str, Any]) -> None:
        self.fake.state.touch(int(contact_id), **_bx(fields))

    def delete_contact(self, contact_id: str) -> None:
        self.fake.state.delete(int(contact_id))

    def force_equal_updated_at(self, contact_ids: Sequence[str]) -> None:
        state = self.fake.state
        stamp = state.now()   # the ticking clock: later than anything stored before
        with state.lock:
            for cid in contact_ids:
                state.contacts[int(cid)]["DATE_MODIFY"] = stamp

    def count_activities(self, session_id: str) -> int:
        return sum(marker(session_id) in str(a.get("SUBJECT", ""))
                   for a in self.fake.state.activities.values())

    def activity_text(self, session_id: str) -> str:
        return repr([a for a in self.fake.state.activities.values()
                     if marker(session_id) in str(a.get("SUBJECT", ""))])

    @contextlib.contextmanager
    def throttling(self) -> Iterator[None]:
        state = self.fake.state
        saved = state.bucket_size
        state.bucket_size = 0          # every request overflows the bucket: 503 QUERY_LIMIT_EXCEEDED
        try:
            yield
        finally:
            state.bucket_size = saved

    def unauthorised_connector(self) -> Bitrix24Connector:
        return self.connector(self.fake.webhook_url.replace(self.fake.state.webhook_secret, WRONG_SECRET))


def _bx(fields: Mapping[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in fields.items():
        if isinstance(value, bool):
            value = "1" if value else "0"
        out[key] = [{"VALUE": value, "VALUE_TYPE": "WORK"}] if key == "EMAIL" and value else value
    return out


@pytest.fixture
def conformance_crm(tmp_path):
    with running_bitrix24(clock=TickingClock()) as fake:
        yield Bitrix24Backend(fake, tmp_path / "state")


class TestBitrix24Conformance(ConnectorConformance):
    pass
