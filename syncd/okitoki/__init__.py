"""Oki-Toki: the API client, its endpoint table, date handling, and ``sandbox/`` (the emulator).

Public API::

    from syncd.okitoki import OkitokiClient, Dialer, Operator, ENDPOINTS, validate_overrides
"""

from .client import OkitokiClient
from .dates import from_okitoki, to_okitoki
from .endpoints import ENDPOINTS, OPERATIONS, Endpoint, validate_overrides
from .records import Dialer, Operator

__all__ = [
    "OkitokiClient",
    "Dialer",
    "Operator",
    "Endpoint",
    "ENDPOINTS",
    "OPERATIONS",
    "validate_overrides",
    "to_okitoki",
    "from_okitoki",
]
