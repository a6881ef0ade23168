"""The syncd side of the daemon benchmark, run as its own process so its peak memory is its own.

    python bench/sync_worker.py SPEC.json      # prints one JSON line with the results

SPEC: {"mode": "initial" | "incremental", "config": {...config dict...}, "state_dir": DIR,
"changes": 1000, "rounds": 3, "crm_db": PATH, "linked": N, "reread": bool,
"no_accounting": bool}.

- ``initial``: cycles (all pulls, then push) until a cycle pushes nothing (at most 4); wall
  time of each.
- ``incremental``: a warm-up cycle (nothing to do), then ``rounds`` times: ``changes`` CRM
  contacts get a new name (spread over ids 1..linked, ``updated_at`` now), the timed cycle
  that carries them to Oki-Toki, then the next cycle (which reads their echo back from the
  export). The median change cycle is the figure (the machine is shared).
  With ``reread``: the cursors are reset as ``syncd resync`` does and one cycle re-reads
  both sides in full (timed; its peak memory measured on its own).

Peak memory: ``VmHWM`` of this process from /proc/self/status (kB), reset between phases by
writing 5 to /proc/self/clear_refs.
"""

from __future__ import annotations

import json
import random
import statistics
import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def reset_hwm() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _cycle(syncer: Any) -> dict[str, Any]:
    started = time.perf_counter()
    report = syncer.cycle()
    seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 3), "counts": report.counts, "errors": report.errors[:5],
            "jobs": {r.job: r.duration for r in report.runs}}


def _pushed(cycle: dict[str, Any]) -> int:
    return sum(v for k, v in cycle["counts"].items()
               if k.startswith("push.") and not k.startswith("push.merge_"))


def _sandbox_ops(spec: dict[str, Any]) -> dict[str, int]:
    """Oki-Toki requests so far, by operation (the sandbox's admin journal; not timed)."""
    import httpx

    base = spec["config"]["okitoki"]["url"].rstrip("/")
    return httpx.get(f"{base}/_sandbox/requests", params={"limit": 0}, timeout=60).json()["by_operation"]


def _diff(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: v - a.get(k, 0) for k, v in b.items() if v - a.get(k, 0)}


def edit_crm(crm_db: str, linked: int, changes: int, seed: int = 7) -> list[int]:
    """Rename ``changes`` contacts spread over 1..linked, as a CRM user would (updated_at now)."""
    ids = sorted(random.Random(seed).sample(range(1, linked + 1), changes))
    now = datetime.now(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    con = sqlite3.connect(crm_db)
    with con:
        con.executemany("UPDATE contacts SET name = name || ' (edited)', updated_at = ? WHERE id = ?",
                        [(now, i) for i in ids])
    con.close()
    return ids


def bare_updates(spec: dict[str, Any], ids: list[int]) -> float:
    """Seconds a plain loop takes to send the change cycle's ``contacts/add-update`` requests
    again (one per edited contact, with the names the CRM now has, so the echo cycle still finds
    nothing to do), right after that cycle: the sandbox's and loopback's cost at the same moment,
    which a cycle measured under another load is corrected by."""
    import httpx

    con = sqlite3.connect(spec["crm_db"])
    try:
        names = dict(con.execute(f"SELECT id, name FROM contacts WHERE id IN ({','.join('?' * len(ids))})",
                                 ids).fetchall())
    finally:
        con.close()
    okitoki = spec["config"]["okitoki"]
    url, token = okitoki["url"].rstrip("/") + "/api/v1/contacts/add-update", okitoki["api_token"]
    started = time.perf_counter()
    with httpx.Client(timeout=60) as client:
        for i in ids:
            client.post(url, data={"contact_id": i, "name": names[i], "api_token": token}).raise_for_status()
    return round(time.perf_counter() - started, 3)


def _without_accounting_writes() -> None:
    """Diagnosis only (never the headline figures): the per-request daily-budget update and
    API-journal insert (two state-database transactions a request) become no-ops, to show
    what share of the engine's overhead they are."""
    from syncd.store import accounting

    accounting.StoreBudget.spend = lambda self, system, n=1: None  # type: ignore[method-assign]
    accounting.StoreJournal.__call__ = lambda self, entry: None  # type: ignore[method-assign]


def run(spec: dict[str, Any]) -> dict[str, Any]:
    from syncd.config import validate_config_dict
    from syncd.engine import build_syncer
    from syncd.heap import settle
    from syncd.logs import configure_logging

    if spec.get("no_accounting"):
        _without_accounting_writes()
    log = open(Path(spec["state_dir"]) / "syncd.log", "a", encoding="utf-8")
    configure_logging("json", "warning", stream=log)
    config = validate_config_dict(spec["config"], source="bench")
    out: dict[str, Any] = {"mode": spec["mode"]}
    syncer = build_syncer(config, state_dir=Path(spec["state_dir"]) / "crm-state")
    settle()   # as `syncd run` does once its engine is built
    try:
        if spec["mode"] == "initial":
            started, cpu, cycles = time.perf_counter(), time.process_time(), []
            while len(cycles) < 4:
                cycles.append(_cycle(syncer))
                if len(cycles) > 1 and _pushed(cycles[-1]) == 0:
                    break
            out.update(seconds=round(time.perf_counter() - started, 3), cycles=cycles,
                       cpu_s=round(time.process_time() - cpu, 3), peak_mb=vm_hwm_mb())
        else:
            warm = _cycle(syncer)
            rounds = []
            for r in range(max(1, int(spec.get("rounds", 1)))):
                edited = edit_crm(spec["crm_db"], spec["linked"], spec["changes"], seed=7 + r)
                before = _sandbox_ops(spec)
                change = _cycle(syncer)
                between = _sandbox_ops(spec)
                bare_s = bare_updates(spec, edited)
                after_bare = _sandbox_ops(spec)
                echo = _cycle(syncer)
                after = _sandbox_ops(spec)
                rounds.append({"change_s": change["seconds"], "echo_s": echo["seconds"],
                               "push_s": change["jobs"].get("push"), "bare_s": bare_s,
                               "change_vs_bare": round(change["seconds"] / bare_s, 3) if bare_s else None,
                               "change_requests": _diff(before, between),
                               "echo_requests": _diff(after_bare, after)})
            out.update(warm=warm, change=change, echo=echo, edited=len(edited), edited_ids=edited,
                       rounds=rounds, change_median_s=statistics.median(x["change_s"] for x in rounds),
                       bare_median_s=statistics.median(x["bare_s"] for x in rounds),
                       change_vs_bare_median=statistics.median(x["change_vs_bare"] or 0 for x in rounds),
                       peak_mb=vm_hwm_mb())
            if spec.get("reread"):
                from syncd.engine.status import resync

                out["hwm_reset"] = reset_hwm()
                resync(syncer.store)
                out["reread"] = _cycle(syncer)
                out["reread_peak_mb"] = vm_hwm_mb()
    finally:
        syncer.close()
        log.close()
    return out


def main() -> None:
    """``SYNCD_BENCH_PROFILE=FILE``: run under cProfile and write its stats to FILE (a
    diagnosis aid; the timings of a profiled run are not figures)."""
    import os

    spec = json.loads(Path(sys.argv[1]).read_text())
    profile_to = os.environ.get("SYNCD_BENCH_PROFILE")
    if not profile_to:
        print(json.dumps(run(spec)), flush=True)
        return
    import cProfile

    profiler = cProfile.Profile()
    out = profiler.runcall(run, spec)
    profiler.dump_stats(profile_to)
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
