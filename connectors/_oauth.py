"""OAuth2 access/refresh token pairs that rotate, kept across restarts.

Several CRMs (Bitrix24, amoCRM/Kommo, Pipedrive) hand out a *new* refresh token on every
refresh and invalidate the old one. The configured refresh token is therefore only a seed: the
current pair lives in a JSON file with mode 0600 under the connector's ``state_dir`` (never in
the state database, never in a log line). The seed's SHA-256 is stored with the pair, so when a
person puts a *different* refresh token in the configuration (re-authorised the app), it wins
over the stored pair; the same seed after a restart does not.

Usage in a connector::

    store = TokenStore.in_state_dir(context.state_dir, "bitrix24")
    oauth = OAuthSession(store, seed_refresh_token=opts.refresh_token, refresh=self._refresh)
    response = oauth.call(lambda token: remote.request(..., headers=bearer(token)))

``refresh(refresh_token) -> TokenPair`` is the connector's own grant request (the endpoint and
body differ per vendor); :func:`token_pair_from_response` parses the usual JSON answer.
Every token seen is registered with :mod:`syncd.redact`, so errors and logs mask it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Callable, ClassVar, TypeVar

import httpx
import structlog

from syncd.atomic_file import write_atomically
from syncd.errors import AuthenticationError, ConfigError
from syncd.redact import register_secret

from ._clock import ServerClock
from ._once import IntentLedger

__all__ = ["TokenPair", "TokenStore", "OAuthSession", "token_pair_from_response", "bearer",
           "require_one_credential", "rotating_session", "TokenOrOAuthConnector"]

log = structlog.get_logger()
T = TypeVar("T")


@dataclass(frozen=True)
class TokenPair:
    """An access token, the refresh token that replaces it, and when the access token expires
    (UTC; None when the vendor did not say)."""

    access_token: str
    refresh_token: str
    expires_at: datetime | None = None

    def expired(self, now: datetime, skew: timedelta) -> bool:
        return self.expires_at is not None and now + skew >= self.expires_at


def token_pair_from_response(body: dict[str, Any], *, now: datetime | None = None) -> TokenPair:
    """``{"access_token", "refresh_token", "expires_in" (seconds)}`` → :class:`TokenPair`.

    Raises AuthenticationError (without the body, which holds tokens) when a token is missing.
    """
    access, refresh = body.get("access_token"), body.get("refresh_token")
    if not isinstance(access, str) or not isinstance(refresh, str) or not access or not refresh:
        raise AuthenticationError("the token endpoint answered without an access/refresh token",
                                  operation="oauth refresh")
    register_secret(access)
    register_secret(refresh)
    expires_in = body.get("expires_in")
    expires_at = None
    if isinstance(expires_in, (int, float)) or (isinstance(expires_in, str) and expires_in.isdigit()):
        expires_at = (now or datetime.now(UTC)) + timedelta(seconds=float(expires_in))
    return TokenPair(access, refresh, expires_at)


def bearer(token: str) -> dict[str, str]:
    """The ``Authorization`` header for an access token."""
    return {"Authorization": f"Bearer {token}"}


def require_one_credential(token_name: str, token: str | None,
                           oauth: tuple[str | None, str | None, str | None]) -> None:
    """ValueError unless exactly one way to authenticate is configured: the static token, or
    all of ``oauth`` (client_id, client_secret, refresh_token); for options validators."""
    if bool(token) == all(oauth) or (any(oauth) and not all(oauth)):
        raise ValueError(f"set either {token_name} or all of client_id, client_secret and "
                         "refresh_token (OAuth)")


def _fingerprint(seed: str | None) -> str | None:
    return hashlib.sha256(seed.encode()).hexdigest() if seed else None


class TokenStore:
    """One JSON file (mode 0600) holding the current :class:`TokenPair` of one connector.

    Writes are atomic (temporary file in the same directory, fsync, ``os.replace``), so a crash
    leaves either the old pair or the new one, never a torn file.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @classmethod
    def in_state_dir(cls, state_dir: Path, name: str) -> "TokenStore":
        """The store ``<state_dir>/oauth-<name>.json`` (the directory is created 0700)."""
        state_dir = Path(state_dir)
        state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return cls(state_dir / f"oauth-{name}.json")

    def load(self, seed_refresh_token: str | None = None) -> TokenPair | None:
        """The stored pair, or None if there is none or it was made from another seed."""
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the OAuth token file {self.path}: {type(exc).__name__}")
        seed = _fingerprint(seed_refresh_token)
        if seed is not None and data.get("seed") not in (None, seed):
            return None  # a person configured a new refresh token: it replaces the stored pair
        try:
            expires = data.get("expires_at")
            pair = TokenPair(data["access_token"], data["refresh_token"],
                             datetime.fromisoformat(expires) if expires else None)
        except (KeyError, TypeError, ValueError):
            raise ConfigError(f"the OAuth token file {self.path} is malformed; delete it and "
                              "configure a fresh refresh token")
        register_secret(pair.access_token)
        register_secret(pair.refresh_token)
        return pair

    def save(self, pair: TokenPair, seed_refresh_token: str | None = None) -> None:
        """Persist ``pair`` atomically with mode 0600."""
        data = {
            "access_token": pair.access_token,
            "refresh_token": pair.refresh_token,
            "expires_at": pair.expires_at.isoformat() if pair.expires_at else None,
            "seed": _fingerprint(seed_refresh_token),
            "saved_at": datetime.now(UTC).isoformat(),
        }
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_atomically(self.path, json.dumps(data))


class OAuthSession:
    """The current access token of one connector, refreshed when expired or rejected.

    Thread-safe: one refresh at a time, and a caller whose token was rejected only refreshes if
    nobody refreshed meanwhile (a rotated refresh token must be spent exactly once).
    """

    def __init__(self, store: TokenStore, *, seed_refresh_token: str | None,
                 refresh: Callable[[str], TokenPair], seed_access_token: str | None = None,
                 skew: timedelta = timedelta(seconds=60),
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self._seed = seed_refresh_token
        self._refresh = refresh
        self._skew = skew
        self._now = now
        self._lock = threading.Lock()
        register_secret(seed_refresh_token)
        register_secret(seed_access_token)
        pair = store.load(seed_refresh_token)
        if pair is None and seed_refresh_token:
            pair = TokenPair(seed_access_token or "", seed_refresh_token,
                             None if seed_access_token else datetime.min.replace(tzinfo=UTC))
        if pair is None:
            raise ConfigError(f"no OAuth refresh token configured and none stored in {store.path}")
        self._pair = pair

    def access_token(self) -> str:
        """A valid access token, refreshing first if it is missing or about to expire."""
        with self._lock:
            pair = self._pair
            if not pair.access_token or pair.expired(self._now(), self._skew):
                pair = self._refresh_locked()
            return pair.access_token

    def refresh_after_rejection(self, rejected: str) -> str:
        """The remote refused ``rejected``: refresh (unless another thread already did)."""
        with self._lock:
            if self._pair.access_token != rejected:
                return self._pair.access_token
            return self._refresh_locked().access_token

    def call(self, send: Callable[[str], T]) -> T:
        """``send(access_token)``; on AuthenticationError refresh once and send again."""
        token = self.access_token()
        try:
            return send(token)
        except AuthenticationError:
            return send(self.refresh_after_rejection(token))

    def _refresh_locked(self) -> TokenPair:
        pair = self._refresh(self._pair.refresh_token)
        register_secret(pair.access_token)
        register_secret(pair.refresh_token)
        # Saved before use: if we crashed after the vendor rotated it but before saving,
        # the old refresh token would be dead and the connector locked out.
        self.store.save(pair, self._seed)
        self._pair = pair
        log.info("oauth.refreshed", store=str(self.store.path),
                 expires_at=pair.expires_at.isoformat() if pair.expires_at else None)
        return pair


def rotating_session(state_dir: Path, name: str, seed_refresh_token: str | None,
                     refresh: Callable[[str], TokenPair]) -> OAuthSession | None:
    """The OAuth session of connector ``name`` (its pair kept in ``state_dir``) when a refresh
    token is configured; None when the connector uses a static token instead."""
    if not seed_refresh_token:
        return None
    return OAuthSession(TokenStore.in_state_dir(state_dir, name),
                        seed_refresh_token=seed_refresh_token, refresh=refresh)


def token_or_oauth_remote(context: Any, name: str, *, url: str, secrets: list[str | None],
                          static_headers: dict[str, str], check: Any, burst: int,
                          refresh_token: str | None,
                          refresh: Callable[[str], TokenPair]) -> tuple[Any, OAuthSession | None]:
    """The remote system of connector ``name``, which authenticates with a static token
    (``static_headers``) or an OAuth refresh token (rotated by ``refresh``), and its OAuth
    session (None with a static token). Every given secret is redacted from its messages."""
    remote = context.remote(base_url=url.rstrip("/"), secrets=[s for s in secrets if s],
                            check=check, burst=burst, headers=static_headers)
    return remote, rotating_session(context.state_dir, name, refresh_token, refresh)


def authorized_request(remote: Any, oauth: "OAuthSession | None", method: str, path: str, *,
                       operation: str, idempotent: bool = True, **kwargs: Any) -> Any:
    """``remote.request`` with the OAuth bearer token (refreshed once on a 401) when ``oauth``
    is set; ``idempotent=False``: a create, never blindly repeated (``RemoteSystem.request``)."""

    def with_token(token: str | None) -> Any:
        headers = {**(kwargs.pop("headers", None) or {}), **(bearer(token) if token else {})}
        return remote.request(method, path, operation=operation, idempotent=idempotent,
                              headers=headers, **kwargs)
    return oauth.call(with_token) if oauth else with_token(None)


class TokenOrOAuthConnector:
    """Base of the connectors whose options hold a static token or an OAuth refresh token
    (HubSpot, Pipedrive): the state their constructors share and their one way to send a
    request (:meth:`_call`). A subclass gives its ``_refresh`` grant request."""

    default_burst: ClassVar[int]

    def __init__(self, options: Any, context: Any, name: str, *, check: Any,
                 secrets: list[str | None], static_headers: dict[str, str]) -> None:
        self.options, self.context = options, context
        self.dnc = context.do_not_call_field
        self.region = context.default_region
        self.remote, self.oauth = token_or_oauth_remote(
            context, name, url=options.url, check=check, burst=self.default_burst, secrets=secrets,
            static_headers=static_headers, refresh_token=options.refresh_token, refresh=self._refresh)
        self.server_clock = ServerClock()

    def _ledger(self, name: str) -> IntentLedger:
        """The intent ledger ``name`` in the state directory, without intents older than 30 days."""
        ledger = IntentLedger.in_state_dir(self.context.state_dir, name)
        ledger.prune(timedelta(days=30))
        return ledger

    def _refresh(self, refresh_token: str) -> TokenPair:
        raise NotImplementedError

    def _call(self, method: str, path: str, operation: str, *, idempotent: bool = True,
              **kwargs: Any) -> httpx.Response:
        """A request (with the OAuth bearer token when there is one) whose answer sets the
        server clock; ``idempotent=False``: a create (see :func:`authorized_request`)."""
        return self.server_clock.read(authorized_request(self.remote, self.oauth, method, path,
                                                         operation=operation,
                                                         idempotent=idempotent, **kwargs))
