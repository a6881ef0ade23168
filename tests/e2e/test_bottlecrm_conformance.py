"""The connector conformance suite (syncd.testing) against a live BottleCRM server."""

from __future__ import annotations

import pytest

from syncd.testing.conformance import ConnectorConformance

pytestmark = [pytest.mark.e2e, pytest.mark.bottlecrm]


@pytest.fixture
def conformance_crm(bottlecrm_crm):
    """The session's live BottleCRM (see tests/e2e/live_crms.py) as the suite's one fixture."""
    return bottlecrm_crm


class TestBottleCrmConformance(ConnectorConformance):
    pass
