"""Pipedrive API facts: options, error-body mapping."""

from __future__ import annotations

from datetime import timedelta

import httpx
from pydantic import BaseModel, ConfigDict, model_validator

from syncd.errors import AuthenticationError, BudgetExhausted, InvalidRequest, Throttled
from syncd.http import error_for_status

from .._oauth import require_one_credential

__all__ = ["PipedriveOptions", "check_response", "TOP_LEVEL", "PAGE"]

TOP_LEVEL = {"name", "first_name", "last_name", "owner_id", "org_id", "visible_to", "label_ids"}
PAGE = 500   # persons per list request: a list request costs the same tokens at any size


class PipedriveOptions(BaseModel):
    """``[crm.options]`` of the pipedrive connector (``api_token_file`` works for ``api_token``)."""

    model_config = ConfigDict(extra="forbid")

    url: str = "https://api.pipedrive.com"   # with OAuth: the company domain (api_domain)
    api_token: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    refresh_token: str | None = None          # seed; the rotating pair lives in state_dir
    oauth_url: str = "https://oauth.pipedrive.com"
    do_not_call_value: str = "yes"            # value of the do-not-call custom field when set
    phone_label: str = "work"
    user_id: int | None = None                # Pipedrive user owning logged calls (default: token's)
    call_lookup_pages: int = 20               # pages of 50 call logs searched after a lost answer
    settle_s: float = 0.0                     # persons changed more recently wait for the next
    #                                           poll (the engine's [crm] overlap re-reads instead)
    # Webhooks (/events/crm) carry the HTTP basic auth set when the webhook was created
    # (http_auth_user / http_auth_password); no password: the daemon refuses them (404).
    webhook_user: str | None = None
    webhook_password: str | None = None

    @model_validator(mode="after")
    def _one_credential(self) -> "PipedriveOptions":
        require_one_credential("api_token", self.api_token,
                               (self.client_id, self.client_secret, self.refresh_token))
        return self


def check_response(response: httpx.Response, operation: str) -> None:
    """Map Pipedrive's ``{"success": false, "error": ...}`` bodies to the taxonomy."""
    try:
        body = response.json() if response.content else {}
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    kw = dict(system="crm", operation=operation, status=response.status_code)
    if response.status_code < 400:
        if body.get("success") is False:
            raise InvalidRequest(str(body.get("error") or "success: false")[:300], **kw)
        return
    message = str(body.get("error") or body.get("message") or "")[:300] or None
    if response.status_code == 429:
        if any(w in (message or "").lower() for w in ("budget", "daily")):
            raise BudgetExhausted(f"Pipedrive daily token budget is spent ({message})", **kw)
        wait = response.headers.get("Retry-After") or response.headers.get("x-ratelimit-reset") or "2"
        raise Throttled(f"Pipedrive rate limit: {message}",
                        retry_after=timedelta(seconds=float(wait)), **kw)
    if operation == "oauth refresh" and response.status_code in (400, 401):
        raise AuthenticationError(f"OAuth refresh refused: {message}", **kw,
                                  hint="re-authorise the app and configure its new refresh token")
    error = error_for_status(response, system="crm", operation=operation, message=message)
    if error is not None:
        raise error
