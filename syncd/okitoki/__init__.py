"""Oki-Toki: the API client, its endpoint table, date handling, and ``sandbox/`` (the emulator).

Public API::

    from syncd.okitoki import OkitokiClient, Dialer, Operator, ENDPOINTS, validate_overrides,
        Profile, load_profile, MissingField, MissingRecordField
"""

from .client import OkitokiClient
from .dates import from_okitoki, to_okitoki
from .endpoints import ENDPOINTS, OPERATIONS, Endpoint, validate_overrides
from .profile import MissingField, MissingRecordField, Profile, load_profile
from .records import Dialer, Operator

__all__ = [
    "OkitokiClient",
    "Dialer",
    "Operator",
    "Endpoint",
    "ENDPOINTS",
    "OPERATIONS",
    "validate_overrides",
    "Profile",
    "load_profile",
    "MissingField",
    "MissingRecordField",
    "to_okitoki",
    "from_okitoki",
]
