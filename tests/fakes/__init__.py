"""Fake CRM servers for tests: loopback HTTP servers reproducing each vendor's documented
behaviour and quirks (see ``/work/shared/crm-apis.md``). Start one with its ``running_<crm>()``
context manager; :mod:`tests.fakes._server` is the shared loopback runner."""
