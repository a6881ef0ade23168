"""Test support shipped with syncd.

* :mod:`syncd.testing.conformance` — the connector conformance suite (``ConnectorConformance``),
  run by any connector through ONE fixture, ``conformance_crm``
  (contract: :class:`syncd.testing.contract.ConformanceCrm`; plugin: :mod:`syncd.testing.plugin`).
* :mod:`syncd.testing.context` — a test :class:`~syncd.connector.ConnectorContext`.
* :mod:`syncd.testing.sandbox` — the Oki-Toki sandbox in a thread or a child process.

Nothing is imported here: the runtime (``syncd sandbox``) must not need pytest.
"""
