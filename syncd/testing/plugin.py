"""The pytest plugin of the conformance suite (entry point ``pytest11``: ``syncd_conformance``).

Installed with syncd, so any project that has syncd installed gets, without a conftest import:

* the marker ``conformance``, put automatically on every test inherited from
  :class:`syncd.testing.conformance.ConnectorConformance` (run them alone with
  ``pytest -m conformance``);
* the fixture ``connector_context_factory``: ``factory(field_names=..., transport=...)`` builds a
  test :class:`~syncd.connector.ConnectorContext` (fast retries, private rate limiter, a state
  directory under ``tmp_path``), see :func:`syncd.testing.context.connector_context`.

The suite itself needs ONE fixture from the connector's tests: ``conformance_crm`` (see
:class:`syncd.testing.contract.ConformanceCrm`).
"""

from __future__ import annotations

from typing import Any, Callable

import pytest

from ..connector import ConnectorContext


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "conformance: a test of the syncd connector conformance suite")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    from .conformance import ConnectorConformance

    for item in items:
        cls = getattr(item, "cls", None)
        if cls is not None and issubclass(cls, ConnectorConformance):
            item.add_marker(pytest.mark.conformance)


@pytest.fixture
def connector_context_factory(tmp_path) -> Callable[..., ConnectorContext]:
    """``factory(**kw)`` → :func:`syncd.testing.context.connector_context` under tmp_path."""
    from .context import connector_context

    def factory(**kw: Any) -> ConnectorContext:
        return connector_context(tmp_path / "connector-state", **kw)

    return factory
