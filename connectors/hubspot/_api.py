"""HubSpot API facts: options, error-body mapping, search time values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from pydantic import BaseModel, ConfigDict, model_validator

from syncd.errors import AuthenticationError, BudgetExhausted, PermissionDenied, Throttled
from syncd.http import error_for_status

from .._oauth import require_one_credential

__all__ = ["HubSpotOptions", "check_response", "SEARCH_CAP", "CALCULATED_PHONES", "ms"]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SEARCH_CAP = 10_000        # results one search query can page through
# HubSpot's calculated, searchable copies of phone / mobilephone: digits, no country code.
CALCULATED_PHONES = ("hs_searchable_calculated_phone_number", "hs_searchable_calculated_mobile_number")


class HubSpotOptions(BaseModel):
    """``[crm.options]`` of the hubspot connector (``token_file`` is accepted for ``token``)."""

    model_config = ConfigDict(extra="forbid")

    url: str = "https://api.hubapi.com"
    token: str | None = None                # private-app access token
    client_id: str | None = None            # OAuth app (instead of token)
    client_secret: str | None = None
    refresh_token: str | None = None        # seed; the current pair lives in state_dir
    key_property: str = "syncd_key"         # unique-value contact property (idempotent creates)
    call_key_property: str = "syncd_session_id"  # call property holding the Oki-Toki session id
    phone_properties: tuple[str, str] = ("phone", "mobilephone")
    search_lag_s: float = 60.0              # how long an unconfirmed call create may stay unsearchable
    settle_s: float = 0.0                   # changes younger than this wait for the next poll
    #                                         (the engine's [crm] overlap re-reads them instead)
    # Webhooks (/events/crm) are checked by signature v3 with the app's client secret:
    # webhook_secret, else client_secret; unset both: the daemon refuses HubSpot events (404).
    webhook_secret: str | None = None
    # The target URL as registered in HubSpot (what it signs) when a proxy changes it.
    webhook_url: str | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> "HubSpotOptions":
        require_one_credential("token (private app)", self.token,
                               (self.client_id, self.client_secret, self.refresh_token))
        return self


def ms(dt: datetime) -> int:
    """Milliseconds since the epoch, exactly (HubSpot's datetime filter values)."""
    return (dt - EPOCH) // timedelta(milliseconds=1)


def check_response(response: httpx.Response, operation: str) -> None:
    """Map HubSpot error bodies (``{"status":"error","category",...}``) to the taxonomy."""
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    message = str(body.get("message") or body.get("status") or "")[:300] or None
    kw = dict(system="crm", operation=operation, status=response.status_code)
    if response.status_code == 429:
        policy = body.get("policyName", "")
        if policy == "DAILY":
            raise BudgetExhausted(f"HubSpot daily API limit reached ({message})", **kw)
        interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        wait = 1.0 if policy == "SECONDLY" or not interval else int(interval) / 1000
        retry_after = response.headers.get("Retry-After")
        raise Throttled(f"HubSpot rate limit {policy or 'unknown'}: {message}",
                        retry_after=timedelta(seconds=float(retry_after) if retry_after else wait), **kw)
    if body.get("category") == "MISSING_SCOPES":
        scopes = [s for e in body.get("errors", []) for s in
                  e.get("context", {}).get("requiredGranularScopes", [])]
        raise PermissionDenied(f"the app lacks scopes {', '.join(scopes) or '(see HubSpot)'}", **kw,
                               hint="add the scopes to the private app and use its new token")
    if response.status_code == 400 and body.get("status", "").startswith("BAD_"):
        raise AuthenticationError(f"OAuth refresh refused: {message}", **kw,
                                  hint="re-authorise the app and configure its new refresh token")
    error = error_for_status(response, system="crm", operation=operation, message=message)
    if error is not None:
        raise error
