"""Pipedrive connector: persons through API v2, calls through v1 call logs.

Vendor behaviour this module is built around (https://developers.pipedrive.com/docs/api/v1):

* Changed persons come from ``GET /api/v2/persons?updated_since=…&sort_by=update_time&
  sort_direction=asc`` with opaque cursor paging (``additional_data.next_cursor`` null at the
  end). ``update_time`` has one-second resolution, ``updated_since`` is inclusive, and persons
  that tie on it come back in no promised order: a page is cut only where every person of the
  boundary second has been seen, then ordered by (update_time, id) here. A second still
  running can gain changes after it was read: the engine re-reads the last 10 s at every poll
  (``Capabilities.change_overlap``); ``settle_s`` (off by default) can hold them back instead.
* Writes are per person (``POST /api/v2/persons``, ``PATCH /api/v2/persons/{id}``); ``phones``
  replaces the whole list, so numbers are sent once each (first one primary), never appended.
  A create whose answer was lost is looked up among the newest persons (same name and
  numbers, added since the attempt) before it is sent again.
* Call logs (``POST /v1/callLogs``) have no idempotency key: the note carries
  ``[oki-toki session=<id>]`` and an intent ledger under ``state_dir`` makes an unconfirmed
  attempt be looked up in ``GET /v1/callLogs`` before another create.
* Limits: a daily token budget per company (every request costs tokens; a call-log add 10)
  and a burst limit per 2 s; both answer 429. An exhausted daily budget is BudgetExhausted
  (retrying today is pointless); a burst 429 is Throttled with the reset it announces.
"""

from ._api import PipedriveOptions, check_response
from .connector import PipedriveConnector

__all__ = ["PipedriveConnector", "PipedriveOptions", "check_response"]
