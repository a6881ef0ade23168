"""Session fixtures: live Tryton and BottleCRM servers, and the connectors that talk to them.

``tryton_server`` / ``bottlecrm_server`` yield the running server (``base_url``, credentials,
``options`` = the ``[crm.options]`` of its connector) for the whole session, so the daemon
e2e can reuse them; ``tryton_crm`` / ``bottlecrm_crm`` wrap them as
:class:`syncd.testing.contract.ConformanceCrm` objects (``.connector()`` builds a configured
connector; ``.create_contact()`` etc. change the CRM behind its back).

A missing interpreter (Python 3.11 for Tryton, 3.12 for BottleCRM) skips the tests; any other
install or start failure is an error with the failing step's output.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from servers._venv import SetupError  # noqa: E402
from servers.bottlecrm import BottleCrmServer, run_bottlecrm  # noqa: E402
from servers.tryton import TrytonServer, run_tryton  # noqa: E402


# A cold cache installs a CRM (BottleCRM: pip install + migrate, 4 to 7 minutes on 2 cores)
# inside the setup of the first test that needs it; pytest-timeout counts setup time.
COLD_START_TIMEOUT = 1200
SERVER_FIXTURES = {"tryton_server", "bottlecrm_server"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.timeout(COLD_START_TIMEOUT))


@pytest.fixture(scope="session")
def tryton_server(tmp_path_factory) -> Iterator[TrytonServer]:
    """A fresh Tryton (own SQLite database, loopback port) for the session."""
    try:
        with run_tryton(tmp_path_factory.mktemp("tryton")) as server:
            yield server
    except SetupError as exc:
        if "no Python 3.11" in str(exc):
            pytest.skip(str(exc))
        raise


@pytest.fixture(scope="session")
def bottlecrm_server(tmp_path_factory) -> Iterator[BottleCrmServer]:
    """A fresh BottleCRM (own PostgreSQL database cloned from the template) for the session."""
    try:
        with run_bottlecrm(tmp_path_factory.mktemp("bottlecrm")) as server:
            yield server
    except SetupError as exc:
        if "no Python 3.12" in str(exc):
            pytest.skip(str(exc))
        raise


@pytest.fixture(scope="session")
def tryton_crm(tryton_server, tmp_path_factory):
    from live_crms import LiveTryton

    crm = LiveTryton(tryton_server, tmp_path_factory.mktemp("tryton-state"))
    yield crm
    crm.close()


@pytest.fixture(scope="session")
def bottlecrm_crm(bottlecrm_server, tmp_path_factory):
    from live_crms import LiveBottleCrm

    crm = LiveBottleCrm(bottlecrm_server, tmp_path_factory.mktemp("bottlecrm-state"))
    yield crm
    crm.close()
