"""The Kommo connector runs the connector conformance suite against the fake account."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from connectors.kommo import KommoConnector, KommoOptions
from syncd.testing.conformance import ConnectorConformance
from syncd.testing.context import connector_context
from tests.fakes.clock import TickingClock
from tests.fakes.kommo import RunningKommo, running_kommo

WRONG_TOKEN = "llt-wrong-conformance-0000"


class KommoBackend:
    """The fake account plus connectors configured for it (see syncd.testing.contract)."""

    text_field = "name"
    missing_id = "999999"
    abilities = frozenset({"delete", "equal_timestamps", "count_activities", "activity_text", "throttle",
                           "auth_failure", "invalid_value", "raw_phone_formats"})
    max_phones = 3
    settle_seconds = 0.0           # the fake's ticking clock gives every change its own second
    do_not_call_field = "cf:555"

    def __init__(self, fake: RunningKommo, state_dir) -> None:
        self.fake, self.state_dir = fake, state_dir
        self.secrets = (fake.state.token, WRONG_TOKEN)

    def connector(self, token: str | None = None) -> KommoConnector:
        ctx = connector_context(self.state_dir, field_names=("name", "cf:EMAIL", "cf:556"),
                                do_not_call_field=self.do_not_call_field)
        return KommoConnector(KommoOptions(url=self.fake.url, token=token or self.fake.state.token), ctx)

    def create_contact(self, fields: Mapping[str, Any], phones: Sequence[str]) -> str:
        cid = self.fake.state.add_contact("", tuple(phones))
        self.update_contact(str(cid), fields)
        return str(cid)

    def update_contact(self, contact_id: str, fields: Mapping[str, Any]) -> None:
        attrs: dict[str, Any] = {}
        customs = []
        for key, value in fields.items():
            if key.startswith("cf:"):
                ref = key[3:]
                ident = {"field_id": int(ref)} if ref.isdigit() else {"field_code": ref}
                customs.append({**ident, "values": [{"value": value}] if value not in (None, "") else None})
            else:
                attrs[key] = value
        if customs:
            attrs["custom_fields_values"] = customs
        self.fake.state.touch(int(contact_id), **attrs)

    def delete_contact(self, contact_id: str) -> None:
        self.fake.state.delete(int(contact_id))

    def force_equal_updated_at(self, contact_ids: Sequence[str]) -> None:
        state = self.fake.state
        stamp = state.now()
        with state.lock:
            for cid in contact_ids:
                state.contacts[int(cid)]["updated_at"] = stamp

    def count_activities(self, session_id: str) -> int:
        return sum(1 for call in self.fake.state.calls.values()
                   if call["item"].get("uniq") == f"oki-toki:{session_id}")

    def activity_text(self, session_id: str) -> str:
        return repr([call["item"] for call in self.fake.state.calls.values()
                     if call["item"].get("uniq") == f"oki-toki:{session_id}"])

    @contextlib.contextmanager
    def throttling(self) -> Iterator[None]:
        state = self.fake.state
        saved = state.rate_per_s
        state.rate_per_s = 0           # every request answers 429
        try:
            yield
        finally:
            state.rate_per_s = saved

    def unauthorised_connector(self) -> KommoConnector:
        return self.connector(WRONG_TOKEN)

    def invalid_fields(self) -> Mapping[str, Any]:
        return {"responsible_user_id": 999999}   # no such user: refused with validation-errors


@pytest.fixture
def conformance_crm(tmp_path):
    clock = TickingClock()
    with running_kommo(clock=clock.timestamp, rate_per_s=10_000) as fake:
        yield KommoBackend(fake, tmp_path / "state")


class TestKommoConformance(ConnectorConformance):
    pass
