"""HubSpot CRM v3 connector: contacts through search and batch endpoints, calls as call objects.

Vendor behaviour this module is built around (https://developers.hubspot.com/docs/api/crm):

* Changed contacts come from ``POST /crm/v3/objects/contacts/search`` on ``lastmodifieddate``
  (milliseconds). Search sorts on one property only (ties come back in any order) and stops at
  10,000 results per query, so every page is a fresh search anchored on the cursor:
  ``(lastmodifieddate = T AND hs_object_id > I) OR lastmodifieddate > T``; the last timestamp
  group of a window is dropped unless complete, and a group too large for one window is
  walked by id alone. Search lags writes by a few seconds: the engine re-reads the last
  minute of changes at every poll (``Capabilities.change_overlap``, ``[crm] overlap``), and
  ``settle_s`` (off by default) can still hold back changes younger than that (server clock);
  ``fetch_contacts`` uses batch read, which does not lag.
* Batch create/update take ≤ 100 inputs and one bad input fails the whole batch: the batch is
  split in halves and retried until only the bad inputs fail. Creates carry the write's key in
  a unique-value property (``key_property``) so a repeated create after an ambiguous outcome
  answers 409 and is turned into an update of the record it already made.
* Calls have no idempotency key: the session id goes into a call property
  (``call_key_property``), searched before creating, and an intent ledger under ``state_dir``
  stops a second create while an earlier, unconfirmed one may not be searchable yet.
* 429 bodies name a ``policyName``: ``DAILY`` is the daily cap (BudgetExhausted), the others
  are throttling (Throttled, waiting the interval the ``X-HubSpot-RateLimit-*`` headers give).
"""

from ._api import HubSpotOptions, check_response
from .connector import HubSpotConnector

__all__ = ["HubSpotConnector", "HubSpotOptions", "check_response"]
