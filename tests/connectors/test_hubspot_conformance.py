"""The HubSpot connector runs the connector conformance suite against the fake HubSpot."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import pytest

from connectors.hubspot import HubSpotConnector, HubSpotOptions
from syncd.testing.conformance import ConnectorConformance
from syncd.testing.context import connector_context
from tests.fakes.hubspot import TOKEN, FakeHubSpot, running_hubspot

WRONG_TOKEN = "pat-eu1-wrong-conformance-0000"


class HubSpotBackend:
    """The fake HubSpot plus connectors configured for it (see syncd.testing.contract)."""

    text_field = "firstname"
    missing_id = "999999999"
    secrets = (TOKEN, WRONG_TOKEN)
    abilities = frozenset({"delete", "equal_timestamps", "count_activities", "activity_text", "throttle",
                           "auth_failure", "invalid_value", "raw_phone_formats"})
    max_phones = 2
    settle_seconds = 0.01            # lastmodifieddate has millisecond resolution
    do_not_call_field = "syncd_do_not_call"

    def __init__(self, fake: FakeHubSpot, state_dir) -> None:
        self.fake, self.state_dir = fake, state_dir

    def connector(self, token: str = TOKEN) -> HubSpotConnector:
        ctx = connector_context(self.state_dir, field_names=("firstname", "lastname", "email"),
                                do_not_call_field=self.do_not_call_field)
        return HubSpotConnector(HubSpotOptions(url=self.fake.url, token=token, settle_s=0), ctx)

    def create_contact(self, fields: Mapping[str, Any], phones: Sequence[str]) -> str:
        props = dict(zip(("phone", "mobilephone"), phones))
        return self.fake.add_contact(**props, **{k: _text(v) for k, v in fields.items()})

    def update_contact(self, contact_id: str, fields: Mapping[str, Any]) -> None:
        self.fake.edit_contact(contact_id, **{k: _text(v) for k, v in fields.items()})

    def delete_contact(self, contact_id: str) -> None:
        self.fake.archive_contact(contact_id)

    def force_equal_updated_at(self, contact_ids: Sequence[str]) -> None:
        with self.fake.lock:
            stamp = max(r.updated_ms for r in self.fake.contacts.values()) + 1
            for cid in contact_ids:
                self.fake.contacts[int(cid)].updated_ms = stamp

    def count_activities(self, session_id: str) -> int:
        return len(self.fake.calls_for_session(session_id))

    def activity_text(self, session_id: str) -> str:
        return repr([c.properties for c in self.fake.calls_for_session(session_id)])

    @contextlib.contextmanager
    def throttling(self) -> Iterator[None]:
        self.fake.ten_second_limit = 0
        try:
            yield
        finally:
            self.fake.ten_second_limit = None

    def unauthorised_connector(self) -> HubSpotConnector:
        return self.connector(WRONG_TOKEN)

    def invalid_fields(self) -> Mapping[str, Any]:
        return {"email": "not-an-email"}


def _text(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    return None if value is None else str(value)


@pytest.fixture(scope="module")
def _server():
    with running_hubspot() as fake:
        yield fake


@pytest.fixture
def conformance_crm(_server, tmp_path):
    _server.reset()
    return HubSpotBackend(_server, tmp_path / "state")


class TestHubSpotConformance(ConnectorConformance):
    pass
