"""The optional members of the connector protocol: a plain connector class leaves them out
and the core uses the documented defaults; a connector that declares them is heard."""

from __future__ import annotations

from typing import ClassVar

from connectors.hubspot.connector import HubSpotConnector
from connectors.sql.connector import SqlConnector
from syncd.connector import ReportsUntracked, VendorLimits
from syncd.model import Untracked


class Plain:
    """A connector class declaring none of the optional members."""


def test_a_connector_without_vendor_limits_gets_the_documented_defaults() -> None:
    assert VendorLimits.of(Plain) == VendorLimits(requests_per_minute=None, burst=5,
                                                  daily_request_budget=None, max_in_flight=4)


def test_declared_vendor_limits_are_read_from_the_class_or_an_instance() -> None:
    class Declared:
        default_requests_per_minute: ClassVar[int] = 120
        default_burst: ClassVar[int] = 3

    assert VendorLimits.of(Declared) == VendorLimits(requests_per_minute=120, burst=3)
    assert VendorLimits.of(Declared()) == VendorLimits.of(Declared)
    assert VendorLimits.of(SqlConnector).max_in_flight == 1
    hubspot = VendorLimits.of(HubSpotConnector)
    assert hubspot.burst == HubSpotConnector.default_burst
    assert hubspot.daily_request_budget == HubSpotConnector.default_daily_request_budget


def test_only_connectors_with_untracked_contacts_are_asked_for_them() -> None:
    class Reporting:
        def untracked_contacts(self) -> Untracked:
            return Untracked(null=1)

    assert isinstance(Reporting(), ReportsUntracked)
    assert not isinstance(Plain(), ReportsUntracked)
