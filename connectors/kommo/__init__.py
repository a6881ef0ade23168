"""amoCRM/Kommo connector (``connector = "kommo"`` or ``"amocrm"``): long-lived token or OAuth2.

See :mod:`connectors.kommo.connector` and ``docs/connectors/kommo.md``.
"""

from .connector import KommoConnector, KommoOptions

__all__ = ["KommoConnector", "KommoOptions"]
