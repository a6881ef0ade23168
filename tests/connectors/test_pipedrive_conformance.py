"""The Pipedrive connector runs the connector conformance suite against the fake Pipedrive."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from connectors.pipedrive import PipedriveConnector, PipedriveOptions
from syncd.testing.conformance import ConnectorConformance
from syncd.testing.context import connector_context
from tests.fakes.clock import TickingClock
from tests.fakes.pipedrive import API_TOKEN, FakePipedrive, running_pipedrive

WRONG_TOKEN = "ffffffffffffffffffffffffffffffffffff9999"
DNC = "a1b2c3d4e5f6a1b2c3d4e5f6a1b2c3d4e5f6dnc0"


class PipedriveBackend:
    """The fake Pipedrive plus connectors configured for it (see syncd.testing.contract)."""

    text_field = "name"
    missing_id = "999999999"
    secrets = (API_TOKEN, WRONG_TOKEN)
    abilities = frozenset({"delete", "equal_timestamps", "count_activities", "throttle", "auth_failure",
                           "invalid_value", "raw_phone_formats"})
    max_phones = 5
    settle_seconds = 0.0             # one-second update_time, but the fake ticks a second per change
    do_not_call_field = DNC

    def __init__(self, fake: FakePipedrive, state_dir) -> None:
        self.fake, self.state_dir = fake, state_dir

    def connector(self, token: str = API_TOKEN) -> PipedriveConnector:
        ctx = connector_context(self.state_dir, field_names=("name", "email", "owner_id"),
                                do_not_call_field=DNC)
        return PipedriveConnector(PipedriveOptions(url=self.fake.url, api_token=token, settle_s=0), ctx)

    def create_contact(self, fields: Mapping[str, Any], phones: Sequence[str]) -> str:
        fields = dict(fields)
        name = str(fields.pop("name", None) or "Unnamed")
        custom = {DNC: "yes" if fields.pop(DNC) else None} if DNC in fields else {}
        return self.fake.add_person(name, list(phones), custom_fields=custom, **fields)

    def update_contact(self, contact_id: str, fields: Mapping[str, Any]) -> None:
        fields = dict(fields)
        if DNC in fields:
            person = self.fake.persons[int(contact_id)]
            person["custom_fields"] = {**person["custom_fields"], DNC: "yes" if fields.pop(DNC) else None}
        self.fake.edit_person(contact_id, **fields)

    def delete_contact(self, contact_id: str) -> None:
        self.fake.delete_person(contact_id)

    def force_equal_updated_at(self, contact_ids: Sequence[str]) -> None:
        with self.fake.lock:
            stamp = self.fake.now()      # a fresh tick: later than every update_time so far
            for pid in contact_ids:
                self.fake.persons[int(pid)]["update_time"] = stamp

    def count_activities(self, session_id: str) -> int:
        return len(self.fake.logs_for_session(session_id))

    @contextlib.contextmanager
    def throttling(self) -> Iterator[None]:
        self.fake.burst_limit = 0
        try:
            yield
        finally:
            self.fake.burst_limit = None

    def unauthorised_connector(self) -> PipedriveConnector:
        return self.connector(WRONG_TOKEN)

    def invalid_fields(self) -> Mapping[str, Any]:
        return {"owner_id": "not-a-number"}


@pytest.fixture(scope="module")
def _server():
    with running_pipedrive() as fake:
        yield fake


@pytest.fixture
def conformance_crm(_server, tmp_path):
    _server.reset()
    _server.ticking = TickingClock()
    return PipedriveBackend(_server, tmp_path / "state")


class TestPipedriveConformance(ConnectorConformance):
    pass
