"""The SQL connector passes the conformance suite on SQLite, PostgreSQL and MariaDB."""

import pytest

from syncd.testing.conformance import ConnectorConformance


@pytest.fixture
def conformance_crm(sql_backend):
    return sql_backend


class TestSqlConformance(ConnectorConformance):
    pass
