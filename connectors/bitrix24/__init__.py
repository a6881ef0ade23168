"""Bitrix24 connector (``connector = "bitrix24"``): inbound webhook or OAuth2 app.

See :mod:`connectors.bitrix24.connector` and ``docs/connectors/bitrix24.md``.
"""

from .connector import Bitrix24Connector, Bitrix24Options

__all__ = ["Bitrix24Connector", "Bitrix24Options"]
