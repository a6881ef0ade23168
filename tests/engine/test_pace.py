"""How many requests run at once (syncd.engine.pace.Pace, issue 9 part 3): every worker up to
max_in_flight while requests wait on the network, fewer while this process's CPU is the
bottleneck (more workers would only contend for the interpreter lock), never under two."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import pytest

from syncd.engine.inflight import run_group
from syncd.engine.pace import Pace


class Meter:
    """A fake clock and CPU counter: each window advances both by the given amounts."""

    def __init__(self) -> None:
        self.wall = 0.0
        self.cpu = 0.0

    def window(self, pace: Pace, *, wall: float, cpu: float) -> int:
        pace.acquire()
        self.wall += wall
        self.cpu += cpu
        pace.release()
        return pace.limit


def _pace(meter: Meter) -> Pace:
    return Pace("okitoki", cpu=lambda: meter.cpu, clock=lambda: meter.wall)


def test_the_first_run_starts_with_every_worker() -> None:
    assert _pace(Meter()).begin(8) == 8


def test_a_saturated_cpu_halves_the_workers_down_to_two() -> None:
    meter = Meter()
    pace = _pace(meter)
    pace.begin(8)
    assert [meter.window(pace, wall=0.3, cpu=0.29) for _ in range(4)] == [4, 2, 2, 2]


def _at_two(meter: Meter) -> Pace:
    """A pace that two saturated windows brought down from eight to two workers."""
    pace = _pace(meter)
    pace.begin(8)
    meter.window(pace, wall=0.3, cpu=0.3)
    meter.window(pace, wall=0.3, cpu=0.3)
    assert pace.limit == 2
    return pace


def test_waiting_on_the_network_adds_a_worker_per_window_up_to_the_cap() -> None:
    meter = Meter()
    pace = _at_two(meter)
    assert [meter.window(pace, wall=0.3, cpu=0.03) for _ in range(7)] == [3, 4, 5, 6, 7, 8, 8]


def test_a_middling_share_holds_and_a_short_window_decides_nothing() -> None:
    meter = Meter()
    pace = _pace(meter)
    pace.begin(6)
    assert meter.window(pace, wall=0.3, cpu=0.2) == 6        # 0.67: between IDLE and BUSY
    assert meter.window(pace, wall=0.1, cpu=0.1) == 6        # 0.1 s: too short to judge
    assert meter.window(pace, wall=0.2, cpu=0.2) == 3        # with the next: 0.3 s, all CPU


def test_runs_shorter_than_a_window_still_decide_the_window_spans_them() -> None:
    """A fast remote: each batch's run lasts less than a window, with the claim and settle
    between them. The window goes on across the runs (it used to restart at every run, so
    on a fast machine the controller never decided and eight workers contended throughout)."""
    meter = Meter()
    pace = _pace(meter)
    limits = []
    for _ in range(8):
        pace.begin(8)
        meter.window(pace, wall=0.1, cpu=0.1)    # one run: 0.1 s, all CPU
        meter.wall += 0.02                        # the settle and the next claim
        meter.cpu += 0.02
        limits.append(pace.limit)
    assert limits[-1] == 2, limits
    assert limits[0] == 8                         # 0.1 s alone is too short to judge


def test_a_pause_longer_than_a_window_starts_a_new_window() -> None:
    """Idle time between two pushes (the daemon waiting for its next job) is not spare CPU:
    after a pause the window starts again instead of averaging the pause in."""
    meter = Meter()
    pace = _at_two(meter)
    meter.window(pace, wall=0.2, cpu=0.2)         # 0.2 s of a new window, all CPU
    meter.wall += 60.0                            # idle until the next push
    assert pace.begin(8) == 2
    assert meter.window(pace, wall=0.3, cpu=0.3) == 2   # judged on the new run alone


def test_what_was_learned_carries_to_the_next_run_within_a_new_cap() -> None:
    meter = Meter()
    pace = _pace(meter)
    pace.begin(8)
    meter.window(pace, wall=0.3, cpu=0.3)
    assert pace.begin(8) == 4          # the next batch starts where the last one left off
    assert pace.begin(3) == 3          # a lower max_in_flight (configuration reloaded) caps it
    assert pace.begin(1) == 1          # one at a time: the floor of two does not apply


def test_a_worker_beyond_the_limit_waits_for_a_slot() -> None:
    meter = Meter()
    pace = _pace(meter)
    pace.begin(8)
    meter.window(pace, wall=0.3, cpu=0.3)
    meter.window(pace, wall=0.3, cpu=0.3)          # limit 2
    pace.acquire()
    pace.acquire()
    third = threading.Event()
    t = threading.Thread(target=lambda: (pace.acquire(), third.set()))
    t.start()
    assert not third.wait(0.2), "a third request ran with a limit of two"
    pace.release()
    assert third.wait(2)
    t.join()


class _Ctx(SimpleNamespace):
    def in_flight(self, system: str) -> int:
        return self.cap

    def pace(self, system: str) -> Pace:
        return self.paces.setdefault(system, Pace(system, cpu=self.cpu))


def _peak_late(handler_work, rows: int, cap: int = 8, *, busy: bool) -> tuple[int, dict[int, object]]:
    """Run two batches of ``rows`` contact creates through run_group (as the push runs one
    claimed batch after another); the most requests seen at once in the second batch, after
    the pace learned from the first. ``busy``: the process's CPU counter runs as fast as the
    wall clock (saturated) or stands still (waiting on the network); a real counter would
    depend on what else the machine runs meanwhile."""
    cpu = time.monotonic if busy else (lambda: 0.0)
    ctx = _Ctx(cap=cap, paces={}, stop=None, cpu=cpu)
    Pace.WINDOW, saved = 0.01, Pace.WINDOW
    lock = threading.Lock()
    state = {"now": 0, "peak": 0}

    def handler(c, part):
        out = {}
        for r in part:
            with lock:
                state["now"] += 1
                state["peak"] = max(state["peak"], state["now"])
            handler_work()
            with lock:
                state["now"] -= 1
            out[r.id] = "done"
        return out

    try:
        with ThreadPoolExecutor(cap) as pool:
            for batch in range(2):
                state["peak"] = 0
                items = [SimpleNamespace(id=batch * rows + i, link_id=batch * rows + i,
                                         operation="contact_create", attempts=0) for i in range(rows)]
                got = run_group(ctx, handler, items, target="okitoki", operation="contact_create", pool=pool)
    finally:
        Pace.WINDOW = saved
    return state["peak"], got


def test_cpu_bound_requests_run_two_at_a_time_once_measured() -> None:
    peak, got = _peak_late(lambda: time.sleep(0.002), 200, busy=True)
    assert len(got) == 200 and set(got.values()) == {"done"}
    assert peak <= 2, peak


def test_requests_waiting_on_the_network_keep_every_worker() -> None:
    peak, got = _peak_late(lambda: time.sleep(0.005), 200, busy=False)
    assert len(got) == 200
    assert peak == 8, peak


def test_the_real_counter_reads_computing_as_busy_and_sleeping_as_idle() -> None:
    # cpu_demand counts time on a CPU and (Linux) time runnable in the run queue, so a
    # process computing on a machine whose cores are busy with other work still reads busy
    pace = Pace("okitoki")
    pace.begin(8)
    pace.WINDOW = 0.05
    pace.acquire()
    end = time.process_time() + 0.1
    while time.process_time() < end:
        pass
    pace.release()
    assert pace.limit == 4
    pace.acquire()
    time.sleep(0.1)
    pace.release()
    assert pace.limit == 5


def test_cpu_demand_counts_every_thread() -> None:
    from syncd.engine.pace import cpu_demand

    before = cpu_demand()
    burnt, done = threading.Event(), threading.Event()

    def burn() -> None:
        end = time.thread_time() + 0.1
        while time.thread_time() < end:
            pass
        burnt.set()
        done.wait(5)                    # alive at the next reading, as a request worker is

    t = threading.Thread(target=burn)
    t.start()
    assert burnt.wait(5)
    after = cpu_demand()
    done.set()
    t.join()
    assert after - before >= 0.09
    assert cpu_demand() >= after       # a thread that ended takes nothing out of the total


@pytest.mark.parametrize("cap", [1, 2])
def test_a_small_cap_is_never_exceeded(cap: int) -> None:
    peak, got = _peak_late(lambda: time.sleep(0.002), 60, cap=cap, busy=False)
    assert len(got) == 60 and peak <= cap


def test_metrics_show_how_many_requests_run_at_once_per_system(tmp_path) -> None:
    from syncd.engine.build import build_syncer
    from syncd.store import open_store
    from syncd.web import Metrics

    from .conftest import make_config

    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    open_store(state_url, create=True).close()
    config = make_config(state_url, okitoki={"url": "http://127.0.0.1:9", "api_token": "tok-123456"},
                         crm={"connector": "sql", "options": {"url": f"sqlite:///{tmp_path / 'crm.db'}"}})
    syncer = build_syncer(config, state_dir=tmp_path / "s", instance_id="m")
    try:
        assert "syncd_in_flight_limit" not in Metrics(syncer).render().decode()   # no push yet
        meter = Meter()
        pace = syncer.ctx.paces["okitoki"] = _pace(meter)
        pace.begin(8)
        meter.window(pace, wall=0.3, cpu=0.3)
        text = Metrics(syncer).render().decode()
        assert 'syncd_in_flight_limit{system="okitoki"} 4.0' in text
    finally:
        syncer.close()
