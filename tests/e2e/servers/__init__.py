"""Install and run real CRMs (Tryton, BottleCRM) on loopback for the end-to-end tests.

Each CRM lives in its own virtualenv under the cache directory (``$SYNCD_E2E_CACHE``, default
``~/.cache/syncd-e2e``), installed from the package registry on first use and reused after
(a marker file is written only after a successful install; a missing or broken virtualenv is
rebuilt). Every run gets a throwaway database and an ephemeral loopback port, and is stopped
afterwards. Run one by hand with ``cd tests/e2e && python -m servers tryton|bottlecrm``.
"""
