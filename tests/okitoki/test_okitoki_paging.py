"""Paged reads that change while we walk them: nothing may hide behind a moved record."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import structlog

from syncd.okitoki.paging import walk_by_offset, walk_by_time

from .conftest import make_client
from .scripted import Answer

T0 = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)


class OffsetServer:
    """An in-memory export endpoint: filter updated_at >= from, sort, slice by page."""

    def __init__(self, stamps: dict[str, datetime], per_page: int, ordered: bool = True) -> None:
        self.stamps, self.per_page, self.ordered = stamps, per_page, ordered
        self.on_fetch = lambda n: None
        self.fetches = 0

    def fetch(self, start: datetime, page: int) -> tuple[list[dict], int]:
        self.on_fetch(self.fetches)
        self.fetches += 1
        start = start.replace(microsecond=0)
        rows = sorted(((at, rid) for rid, at in self.stamps.items() if at >= start),
                      key=(lambda r: r) if self.ordered else (lambda r: r[1]))
        first = (page - 1) * self.per_page
        pages = max(1, -(-len(rows) // self.per_page))
        return [{"id": rid, "at": at} for at, rid in rows[first:first + self.per_page]], pages


def test_a_contact_updated_mid_walk_hides_nobody() -> None:
    stamps = {f"c{i:02d}": T0 + timedelta(minutes=i) for i in range(25)}
    server = OffsetServer(stamps, per_page=10)
    server.on_fetch = lambda n: stamps.update(c02=T0 + timedelta(hours=5)) if n == 1 else None
    seen = [r["id"] for r in walk_by_time(server.fetch, T0, lambda r: r["at"], operation="x")]
    assert set(seen) == set(stamps)
    assert seen.count("c02") == 2                          # old state, then new state


def test_plain_offsets_would_have_lost_one() -> None:
    """The failure the time walk exists for (this test pins the reason, not our code)."""
    stamps = {f"c{i:02d}": T0 + timedelta(minutes=i) for i in range(25)}
    server = OffsetServer(stamps, per_page=10)
    server.on_fetch = lambda n: stamps.update(c02=T0 + timedelta(hours=5)) if n == 1 else None
    seen = {r["id"] for r in walk_by_offset(server.fetch, T0)}
    assert "c10" not in seen


def test_random_updates_during_walks_never_hide_a_record() -> None:
    rng = random.Random(11)
    for _ in range(60):
        # Many records share a second, so pages often start and end inside one second (but
        # no page lies wholly inside one: see the paging module for that limit).
        per_page = rng.choice([2, 3, 7, 10])
        stamps = {}
        for second in range(30):
            for _ in range(rng.randrange(0, per_page)):
                stamps[f"r{len(stamps):03d}"] = T0 + timedelta(seconds=second)
        before = dict(stamps)
        server = OffsetServer(stamps, per_page=per_page)

        def meddle(n: int) -> None:
            if n and rng.random() < 0.5:
                victim = rng.choice(sorted(stamps))
                stamps[victim] = T0 + timedelta(seconds=100 + n)

        server.on_fetch = meddle
        seen = {r["id"] for r in walk_by_time(server.fetch, T0, lambda r: r["at"], operation="x")}
        assert seen >= set(before)


def test_no_record_comes_twice_when_nothing_changes() -> None:
    stamps = {f"r{i:02d}": T0 + timedelta(seconds=i // 4) for i in range(40)}   # 4 per second
    server = OffsetServer(stamps, per_page=3)
    seen = [r["id"] for r in walk_by_time(server.fetch, T0, lambda r: r["at"], operation="x")]
    assert sorted(seen) == sorted(stamps)


def test_an_unsorted_server_is_walked_by_offset_with_a_warning() -> None:
    stamps = {f"r{i:02d}": T0 + timedelta(seconds=(i * 7) % 23) for i in range(23)}
    server = OffsetServer(stamps, per_page=5, ordered=False)
    with structlog.testing.capture_logs() as logs:
        seen = [r["id"] for r in walk_by_time(server.fetch, T0, lambda r: r["at"], operation="x")]
    assert sorted(seen) == sorted(stamps)
    assert [e["event"] for e in logs] == ["okitoki.paging_unordered"]


def test_the_client_asks_again_from_the_last_seen_time(scripted) -> None:
    page1 = [{"id": i, "name": f"n{i}", "updated_at": f"29.03.2026 0{i}:00:00"} for i in (1, 2)]
    page2 = [{"id": 2, "name": "n2", "updated_at": "29.03.2026 02:00:00"},
             {"id": 3, "name": "n3", "updated_at": "29.03.2026 05:00:00"}]
    scripted.answer(Answer(200, {"contacts": page1, "page": 1, "pages": 2}),
                    Answer(200, {"contacts": page2, "page": 1, "pages": 1}))
    contacts = list(make_client(scripted.url).export_contacts(T0 - timedelta(hours=3), per_page=2))
    assert [c.id for c in contacts] == ["1", "2", "3"]
    second = scripted.arrivals[1].variables()
    assert second["updated_from"] == "29.03.2026 02:00:00" and str(second["page"]) == "1"
