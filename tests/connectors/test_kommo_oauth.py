"""connectors._oauth: the rotating pair is stored 0600, survives restarts, spent once."""

import stat
import threading
from datetime import UTC, datetime, timedelta

import pytest

from connectors._oauth import OAuthSession, TokenPair, TokenStore, token_pair_from_response
from syncd.errors import AuthenticationError
from syncd.redact import redact


class Grants:
    """A token endpoint that rotates: each refresh token works once."""

    def __init__(self, first: str, clock=None) -> None:
        self.clock = clock
        self.valid = {first}
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self, refresh_token: str) -> TokenPair:
        with self.lock:
            if refresh_token not in self.valid:
                raise AuthenticationError("invalid_grant", operation="oauth refresh")
            self.valid.discard(refresh_token)
            self.calls += 1
            new_refresh = f"refresh-{self.calls:04d}-xyz"
            self.valid.add(new_refresh)
            return token_pair_from_response(
                {"access_token": f"access-{self.calls:04d}-xyz", "refresh_token": new_refresh,
                 "expires_in": 3600}, now=self.clock[0] if self.clock else None)


def test_rotated_pair_is_saved_0600_and_used_after_restart(tmp_path):
    grants = Grants("seed-refresh-1")
    store = TokenStore.in_state_dir(tmp_path / "state", "kommo")
    session = OAuthSession(store, seed_refresh_token="seed-refresh-1", refresh=grants)
    assert session.access_token() == "access-0001-xyz"
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert "seed-refresh-1" not in store.path.read_text()

    # Restart: the seed in the config was spent; the stored pair is used, no refresh needed.
    restarted = OAuthSession(TokenStore.in_state_dir(tmp_path / "state", "kommo"),
                             seed_refresh_token="seed-refresh-1", refresh=grants)
    assert restarted.access_token() == "access-0001-xyz"
    assert grants.calls == 1


def test_new_seed_in_config_replaces_the_stored_pair(tmp_path):
    grants = Grants("seed-a-1234")
    store = TokenStore.in_state_dir(tmp_path, "x")
    OAuthSession(store, seed_refresh_token="seed-a-1234", refresh=grants).access_token()
    grants.valid.add("seed-b-5678")
    session = OAuthSession(store, seed_refresh_token="seed-b-5678", refresh=grants)
    assert session.access_token() == "access-0002-xyz"


def test_expired_access_token_is_refreshed_before_use(tmp_path):
    clock = [datetime(2026, 1, 1, tzinfo=UTC)]
    grants = Grants("seed-0000", clock)
    session = OAuthSession(TokenStore.in_state_dir(tmp_path, "x"), seed_refresh_token="seed-0000",
                           refresh=grants, now=lambda: clock[0])
    assert session.access_token() == "access-0001-xyz"
    clock[0] += timedelta(minutes=30)
    assert session.access_token() == "access-0001-xyz"
    clock[0] += timedelta(minutes=29, seconds=30)   # within the 60 s skew of expiry
    assert session.access_token() == "access-0002-xyz"


def test_concurrent_rejections_spend_the_refresh_token_once(tmp_path):
    grants = Grants("seed-0000")
    session = OAuthSession(TokenStore.in_state_dir(tmp_path, "x"), seed_refresh_token="seed-0000",
                           refresh=grants)
    first = session.access_token()
    threads = [threading.Thread(target=session.refresh_after_rejection, args=(first,))
               for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert grants.calls == 2


def test_call_refreshes_once_when_the_token_is_rejected(tmp_path):
    grants = Grants("seed-0000")
    session = OAuthSession(TokenStore.in_state_dir(tmp_path, "x"), seed_refresh_token="seed-0000",
                           refresh=grants)
    seen = []

    def send(token):
        seen.append(token)
        if len(seen) == 1:
            raise AuthenticationError("expired_token")
        return "ok"

    assert session.call(send) == "ok"
    assert seen == ["access-0001-xyz", "access-0002-xyz"]


def test_tokens_are_redacted_everywhere(tmp_path):
    grants = Grants("seed-secret-0000")
    session = OAuthSession(TokenStore.in_state_dir(tmp_path, "x"),
                           seed_refresh_token="seed-secret-0000", refresh=grants)
    token = session.access_token()
    assert token not in redact(f"failed with {token} and seed-secret-0000")
    assert "seed-secret-0000" not in redact("seed-secret-0000")


def test_missing_tokens_in_the_grant_answer_are_an_authentication_error():
    with pytest.raises(AuthenticationError):
        token_pair_from_response({"error": "invalid_grant"})
