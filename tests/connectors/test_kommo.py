"""Kommo connector against the fake account over loopback HTTP."""

from __future__ import annotations

import stat
from datetime import UTC, datetime, timedelta

import pytest
import structlog

from connectors.kommo import KommoConnector, KommoOptions
from syncd.connector import ConnectorContext
from syncd.errors import AuthenticationError, PermissionDenied, Throttled
from syncd.http import RateLimiter, RemoteSystem, RetryPolicy
from syncd.model import Call, CallDirection, CallOutcome, ContactWrite, Cursor
from tests.fakes.kommo import running_kommo

FAST = RetryPolicy(attempts=3, base_delay=0.001, max_delay=0.01, max_retry_after=0.05, jitter=0.0)
T0 = 1_772_000_000


def make_context(tmp_path, *, fields=("name", "cf:EMAIL", "cf:556"), dnc=None, retry=FAST, sleep=None):
    journal = []

    def remote(**kw):
        kw.update(system="crm", retry=retry, limiter=RateLimiter(None), journal=journal.append,
                  sleep=sleep or (lambda s: None))
        return RemoteSystem(**kw)

    ctx = ConnectorContext(remote=remote, state_dir=tmp_path / "state", field_names=tuple(fields),
                           do_not_call_field=dnc)
    ctx.extra["journal"] = journal
    return ctx


def connector(fake, tmp_path, **kw):
    return KommoConnector(KommoOptions(url=fake.url, token=fake.state.token), make_context(tmp_path, **kw))


@pytest.fixture
def fake():
    with running_kommo(rate_per_s=10_000) as fake:
        yield fake


def walk(conn, limit, cursor=Cursor()):
    seen = []
    for _ in range(1000):
        page = conn.changed_contacts(cursor, limit)
        seen += page.contacts
        cursor = page.next
        if not page.more:
            return seen, cursor
    raise AssertionError("the walk does not end")


@pytest.mark.parametrize("ignored", [False, True])
def test_walk_returns_every_change_once_across_equal_timestamps(fake, tmp_path, ignored):
    fake.state.ignore_updated_at_filter = ignored
    # a run of 260 records in one second (more than a 250-row page), then a few more seconds
    ids = [fake.state.add_contact(f"n{i}", updated_at=T0 + (0 if i < 260 else 1 + i % 3)) for i in range(300)]
    conn = connector(fake, tmp_path)
    for limit in (70, 1000):
        seen, _ = walk(conn, limit)
        assert sorted(int(c.id) for c in seen) == ids
        keys = [(c.updated_at, int(c.id)) for c in seen]
        assert keys == sorted(keys)


def test_cursor_is_strictly_after_updated_at_and_id(fake, tmp_path):
    a = fake.state.add_contact("a", updated_at=T0)
    b = fake.state.add_contact("b", updated_at=T0)
    conn = connector(fake, tmp_path)
    _, cursor = walk(conn, 10)
    assert cursor == Cursor(datetime.fromtimestamp(T0, UTC), str(b))
    fake.state.touch(a, updated_at=T0, name="same second, lower id")
    c = fake.state.add_contact("c", updated_at=T0)
    fake.state.touch(b, updated_at=T0 + 5, name="b2")
    seen, _ = walk(conn, 10, cursor)
    assert [int(x.id) for x in seen] == [c, b]


def test_filtered_walk_sends_the_documented_query(fake, tmp_path):
    fake.state.add_contact("a", updated_at=T0)
    conn = connector(fake, tmp_path)
    conn.changed_contacts(Cursor(datetime.fromtimestamp(T0 - 10, UTC), "0"), 50)
    method, path = fake.state.requests[-1]
    assert method == "GET" and f"filter%5Bupdated_at%5D%5Bfrom%5D={T0 - 10}" in path
    assert "order%5Bupdated_at%5D=asc" in path and "limit=250" in path


def test_ignored_filter_is_detected_warned_once_and_walk_still_exact(fake, tmp_path):
    fake.state.ignore_updated_at_filter = True
    old = fake.state.add_contact("old", updated_at=T0 - 100)
    new = fake.state.add_contact("new", updated_at=T0 + 1)
    conn = connector(fake, tmp_path)
    with structlog.testing.capture_logs() as logs:
        seen, cursor = walk(conn, 10, Cursor(datetime.fromtimestamp(T0, UTC), "0"))
        walk(conn, 10, cursor)
    assert [c.id for c in seen] == [str(new)] and str(old) not in [c.id for c in seen]
    assert [e["event"] for e in logs].count("kommo.updated_at_filter_ignored") == 1
    assert [e["log_level"] for e in logs if e["event"] == "kommo.updated_at_filter_ignored"] == ["warning"]


def test_empty_account_answers_204_and_the_walk_ends(fake, tmp_path):
    page = connector(fake, tmp_path).changed_contacts(Cursor(), 50)
    assert page.contacts == [] and not page.more and page.next == Cursor()


def test_fields_phones_and_dnc_are_mapped(fake, tmp_path):
    cid = fake.state.add_contact("Ann", ("+380501234567",), updated_at=T0, f101="a@x.io", f555=True, f556="new")
    [c] = connector(fake, tmp_path, dnc="cf:555").fetch_contacts([str(cid), "999"])
    assert c.fields == {"name": "Ann", "cf:EMAIL": "a@x.io", "cf:556": "new", "cf:555": True}
    assert c.phones == ("+380501234567",) and c.updated_at == datetime.fromtimestamp(T0, UTC)


def test_phones_replace_the_set_keeping_labels_without_copies(fake, tmp_path):
    cid = fake.state.add_contact("a", ("+380501111111",))
    fake.state.values_of(cid, 100)[0]["enum_code"] = "MOB"
    conn = connector(fake, tmp_path)
    [r] = conn.upsert_contacts([ContactWrite("k", str(cid), phones=("+380501111111", "+380502222222",
                                                                    "+38 050 222 22 22"))])
    assert r.ok and r.id == str(cid)
    assert fake.state.values_of(cid, 100) == [{"value": "+380501111111", "enum_code": "MOB"},
                                              {"value": "+380502222222", "enum_code": "WORK"}]


def test_creates_and_updates_with_a_refused_entity_failing_alone(fake, tmp_path):
    cid = fake.state.add_contact("old")
    conn = connector(fake, tmp_path, dnc="cf:555")
    results = conn.upsert_contacts([
        ContactWrite("a", None, fields={"name": "New", "cf:556": "callback"}, phones=("+380501112233",)),
        ContactWrite("b", None, fields={"name": "Bad", "cf:777": "no such field"}),
        ContactWrite("c", str(cid), fields={"name": "Renamed", "cf:555": True}),
        ContactWrite("d", "424242", fields={"name": "Ghost"}),
    ])
    assert [r.key for r in results] == ["a", "b", "c", "d"]
    assert [r.ok for r in results] == [True, False, True, False]
    assert "field_id" in results[1].error and not results[1].retriable
    assert fake.state.phones_of(int(results[0].id)) == ["+380501112233"]
    assert fake.state.contacts[cid]["name"] == "Renamed"
    assert fake.state.values_of(cid, 555) == [{"value": True}]


def test_find_by_phone_verifies_the_fuzzy_search(fake, tmp_path):
    a = fake.state.add_contact("a", ("+38 (050) 123-45-67",))
    fake.state.add_contact("b", ("+380501234568",))
    assert [c.id for c in connector(fake, tmp_path).find_by_phone("+380501234567")] == [str(a)]


def a_call(sid="900", **kw):
    base = dict(direction=CallDirection.OUTBOUND, phone="+380501234567", started_at=datetime.fromtimestamp(T0, UTC),
                duration_s=42, talk_s=30, outcome=CallOutcome.NO_ANSWER, agent="olga",
                recording_url="https://rec.example/900.mp3")
    return Call(session_id=sid, **{**base, **kw})


def test_calls_are_logged_once_with_uniq_and_the_mapped_status(fake, tmp_path):
    cid = fake.state.add_contact("a", ("+380501234567",))
    conn = KommoConnector(KommoOptions(url=fake.url, token=fake.state.token, agent_users={"olga": 77}),
                          make_context(tmp_path))
    first = conn.log_calls([a_call(), a_call()])
    again = conn.log_calls([a_call()])
    assert first[0].ok and first[0].id == first[1].id == again[0].id
    [call] = fake.state.calls.values()
    item = call["item"]
    assert call["answer"]["entity_id"] == cid
    assert item["uniq"] == "oki-toki:900" and item["call_status"] == 6 and item["direction"] == "outbound"
    assert item["link"] == "https://rec.example/900.mp3" and item["responsible_user_id"] == 77
    assert item["created_at"] == T0 and item["duration"] == 42


def test_a_call_for_an_unknown_number_fails_alone(fake, tmp_path):
    fake.state.add_contact("a", ("+380501234567",))
    ok, missing = connector(fake, tmp_path).log_calls([a_call("1"), a_call("2", phone="+15550001111")])
    assert ok.ok and not missing.ok and not missing.retriable and "+15550001111" in missing.error


def test_429_is_retried_then_surfaces_as_throttled(tmp_path):
    sleeps = []
    with running_kommo(rate_per_s=1) as fake:
        conn = connector(fake, tmp_path, sleep=sleeps.append)
        conn.health_check()
        with pytest.raises(Throttled) as info:
            conn.health_check()
    assert info.value.retry_after == timedelta(seconds=1) and sleeps == [0.05, 0.05]


def test_401_and_403_are_mapped(fake, tmp_path):
    bad = KommoConnector(KommoOptions(url=fake.url, token="wrong-token-123"), make_context(tmp_path))
    with pytest.raises(AuthenticationError) as info:
        bad.health_check()
    assert "wrong-token-123" not in str(info.value)
    fake.state.blocked = True
    with pytest.raises(PermissionDenied) as info:
        connector(fake, tmp_path).health_check()
    assert "request limits" in str(info.value)


def oauth(fake, tmp_path, seed):
    s = fake.state
    return KommoConnector(KommoOptions(url=fake.url, client_id=s.client_id, client_secret=s.client_secret,
                                       refresh_token=seed), make_context(tmp_path))


def test_oauth_rotation_persisted_0600_survives_restart_and_no_token_in_logs(fake, tmp_path):
    seed = fake.state.new_refresh_token()
    fake.state.add_contact("a")
    ctx_logs = []
    with structlog.testing.capture_logs() as logs:
        conn = oauth(fake, tmp_path, seed)
        conn.health_check()
        conn.close()
        fake.state.access_tokens.clear()   # the access token expires while the daemon is down
        restarted = oauth(fake, tmp_path, seed)
        assert len(restarted.changed_contacts(Cursor(), 10).contacts) == 1
        ctx_logs = logs
    store = tmp_path / "state" / "oauth-kommo.json"
    assert stat.S_IMODE(store.stat().st_mode) == 0o600
    assert seed not in fake.state.refresh_tokens and len(fake.state.refresh_tokens) == 1
    [current] = fake.state.refresh_tokens
    assert current in store.read_text()
    text = repr(ctx_logs)
    assert current not in text and seed not in text and fake.state.client_secret not in text


def test_options_need_exactly_one_way_in():
    with pytest.raises(ValueError):
        KommoOptions(url="https://x.kommo.com")
    with pytest.raises(ValueError):
        KommoOptions(url="https://x.kommo.com", token="t", client_id="c")


def test_a_create_repeated_with_its_key_makes_no_second_contact(fake, tmp_path):
    write = ContactWrite("create-1", None, fields={"name": "Once"}, phones=("+380501230001",))
    [first] = connector(fake, tmp_path).upsert_contacts([write])
    [again] = connector(fake, tmp_path).upsert_contacts([write])
    assert again.ok and again.id == first.id and len(fake.state.contacts) == 1


def test_a_create_whose_answer_was_lost_is_looked_up_by_phone(fake, tmp_path):
    conn = connector(fake, tmp_path)
    conn.ledger.sending("create-2")
    made = fake.state.add_contact("Made", ("+380501230002",))
    [r] = conn.upsert_contacts([ContactWrite("create-2", None, fields={"name": "Made"},
                                             phones=("+380501230002",))])
    assert r.ok and r.id == str(made) and len(fake.state.contacts) == 1


def test_a_refused_create_can_be_sent_again(fake, tmp_path):
    conn = connector(fake, tmp_path)
    bad = ContactWrite("create-3", None, fields={"name": "x", "responsible_user_id": 999})
    assert not conn.upsert_contacts([bad])[0].ok
    assert conn.ledger.get("create-3") is None


def test_many_calls_go_in_arrays_of_50(fake, tmp_path):
    fake.state.add_contact("a", ("+380501234567",))
    results = connector(fake, tmp_path).log_calls([a_call(str(i)) for i in range(120)])
    assert all(r.ok for r in results) and len(fake.state.calls) == 120
    assert [m for m, p in fake.state.requests if p.startswith("/api/v4/calls")] == ["POST"] * 3


def test_a_call_kommo_refuses_fails_alone(fake, tmp_path):
    fake.state.add_contact("a", ("+380501234567",))
    good, bad = connector(fake, tmp_path).log_calls([a_call("1"), a_call("2", phone="")])
    assert good.ok and not bad.ok and not bad.retriable and "phone" in bad.error


def test_a_dead_refresh_token_is_an_authentication_error_with_a_hint(fake, tmp_path):
    conn = oauth(fake, tmp_path, "def-never-issued-0000")
    with pytest.raises(AuthenticationError) as info:
        conn.health_check()
    assert "authorise the integration again" in str(info.value)
    assert "def-never-issued-0000" not in str(info.value)
