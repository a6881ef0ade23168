"""The connector conformance suite (syncd.testing) against a live Tryton server."""

from __future__ import annotations

import pytest

from syncd.testing.conformance import ConnectorConformance

pytestmark = [pytest.mark.e2e, pytest.mark.tryton]


@pytest.fixture
def conformance_crm(tryton_crm):
    """The session's live Tryton (see tests/e2e/live_crms.py) as the suite's one fixture."""
    return tryton_crm


class TestTrytonConformance(ConnectorConformance):
    pass
