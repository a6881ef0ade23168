"""The daemon benchmark: initial sync, engine overhead, request economy, incremental cycles
and peak memory (issue 3 "Benchmark", DESIGN.md "Targets"). Not part of the test suite.

    .venv/bin/python bench/bench_sync.py [--contacts 100000] [--linked 10000,100000,1000000]
                                         [--changes 1000] [--reread-max 1000000] [--quick]
                                         [--json] [--keep DIR]

All on loopback: the SQL connector on a SQLite CRM, the Oki-Toki sandbox in its own process
(rate limit off, a budget far above need), the syncd side in its own process
(``bench/sync_worker.py``) so its peak RSS (VmHWM) is its own. The linked worlds are seeded
in bulk in the engine's own row format (``bench/seed.py``), checked first against a real sync
of a few hundred contacts. ``--quick``: small sizes, a minute or so.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Iterator

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import seed  # noqa: E402
from bare import mirror  # noqa: E402

from syncd.demo import demo_config  # noqa: E402
from syncd.testing.sandbox import SandboxHandle, _admin_client, _read_url, sandbox_process  # noqa: E402
from syncd.testing.scenario import SqlCrm  # noqa: E402

TOKEN = "bench-token-0123456789"
TTY = sys.stdout.isatty()


def say(text: str) -> None:
    print(("\r\033[K" if TTY else "") + text, flush=True)


def config_for(folder: Path, url: str) -> dict[str, Any]:
    cfg = demo_config(folder, url, TOKEN)
    cfg["okitoki"].update(requests_per_minute=100_000, daily_request_budget=100_000_000)
    cfg["daemon"]["log_level"] = "warning"
    return cfg


def _seed_sandbox_world(sb: SandboxHandle) -> None:
    sb.seed(dialers=[{"id": 101, "name": "New", "unique": True},
                     {"id": 102, "name": "Callbacks", "unique": False}],
            lists=[{"id": 7, "name": "Blacklist", "values": []}])


@contextmanager
def seeded_sandbox(data_file: Path) -> Iterator[SandboxHandle]:
    """bench/seeded_sandbox.py in a child process (loads the file, never writes it)."""
    proc = subprocess.Popen([sys.executable, str(HERE / "seeded_sandbox.py"), str(data_file)],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = _read_url(proc, 600)
        admin = _admin_client(url, None)
        try:
            yield SandboxHandle(url, TOKEN, admin, process=proc)
        finally:
            admin.close()
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def cpu_seconds(proc: Any) -> float:
    """CPU time (user + system) a child process has used so far, from /proc (0 if unknown)."""
    try:
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, AttributeError, IndexError, ValueError):
        return 0.0


def run_worker(folder: Path, spec: dict[str, Any], progress: Any = None) -> dict[str, Any]:
    spec_file = folder / f"spec-{spec['mode']}.json"
    spec_file.write_text(json.dumps({**spec, "state_dir": str(folder)}))
    # SYNCD_BENCH_WRAP="py-spy record --gil -f raw -o FILE --": a diagnosis aid (a wrapped
    # worker's timings are not figures)
    wrap = shlex.split(os.environ.get("SYNCD_BENCH_WRAP", ""))
    proc = subprocess.Popen([*wrap, sys.executable, str(HERE / "sync_worker.py"), str(spec_file)],
                            stdout=subprocess.PIPE, stderr=open(folder / "worker.err", "a"), text=True)
    stop = threading.Event()
    if progress is not None:
        threading.Thread(target=progress, args=(stop,), daemon=True).start()
    out, _ = proc.communicate()
    stop.set()
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed ({proc.returncode}); see {folder / 'worker.err'}")
    return json.loads(out.strip().splitlines()[-1])


def _ticker(sb: SandboxHandle, label: str, started: float):
    def tick(stop: threading.Event) -> None:
        while not stop.wait(2.0):
            try:
                total = sb.requests(limit=0)["total"]
            except Exception:  # noqa: BLE001 - progress is cosmetic
                continue
            line = f"  {label}: {time.perf_counter() - started:6.1f}s, Oki-Toki requests {total}"
            print(("\r\033[K" + line) if TTY else line, end="" if TTY else "\n", flush=True)
    return tick


# -- phases -----------------------------------------------------------------------------------
def check_format(root: Path, n: int = 300) -> list[str]:
    """A real sync of persons 1..n vs the bulk seed of the same people: same rows?"""
    real, fake = root / "format-real", root / "format-seeded"
    real.mkdir()
    crm = SqlCrm(f"sqlite:///{real / 'crm.db'}").create()
    crm.insert(seed.people(n))
    crm.dispose()
    from syncd.store import migrate

    with sandbox_process(TOKEN, seed=None) as sb:
        _seed_sandbox_world(sb)
        cfg = config_for(real, sb.url)
        migrate(cfg["daemon"]["state_url"])
        run_worker(real, {"mode": "initial", "config": cfg})
        real_sb = sb.state()
    paths = seed.seed_linked(fake, n, datetime.now(UTC), TOKEN)
    seeded_sb = json.loads(paths["sandbox"].read_text())
    return seed.compare_with_real({"state": real / "state.db", "sandbox": real_sb},
                                  {"state": paths["state"], "sandbox": seeded_sb})


def initial_sync(root: Path, n: int, name: str = "initial", no_accounting: bool = False,
                 show: bool = True) -> dict[str, Any]:
    from syncd.store import migrate

    folder = root / name
    folder.mkdir()
    # Last changed over the 30 days before the run, as in a CRM in use (the incremental
    # phase's data): rows all stamped "now" would have the second cycle re-read every one
    # of them through the change-capture overlap, a cost only a bulk import just before the
    # first start pays.
    seed.seed_crm(folder / "crm.db", n, datetime.now(UTC))
    with sandbox_process(TOKEN, seed=None) as sb:
        _seed_sandbox_world(sb)
        sb.clear_requests()
        cfg = config_for(folder, sb.url)
        migrate(cfg["daemon"]["state_url"])
        sandbox_cpu = cpu_seconds(sb.process)
        result = run_worker(folder, {"mode": "initial", "config": cfg, "no_accounting": no_accounting},
                            _ticker(sb, f"{name} sync of {n}", time.perf_counter()) if show else None)
        result["sandbox_cpu_s"] = round(cpu_seconds(sb.process) - sandbox_cpu, 3)
        result["requests"] = sb.requests(limit=0)
    if TTY and show:
        print()
    return result


def bare_run(n: int, by_operation: dict[str, int]) -> dict[str, Any]:
    with sandbox_process(TOKEN, seed=None) as sb:
        _seed_sandbox_world(sb)
        sb.clear_requests()
        people = [(i, seed.person(i)) for i in range(1, n + 1)]
        sandbox_cpu, cpu = cpu_seconds(sb.process), time.process_time()
        result = mirror(sb.url, TOKEN, people, by_operation)
        result["cpu_s"] = round(time.process_time() - cpu, 3)
        result["sandbox_cpu_s"] = round(cpu_seconds(sb.process) - sandbox_cpu, 3)
        result["sandbox_requests"] = sb.requests(limit=0)["by_operation"]
    return result


def incremental(root: Path, linked: int, changes: int, reread: bool, rounds: int) -> dict[str, Any]:
    folder = root / f"linked-{linked}"
    t0 = datetime.now(UTC)
    started = time.perf_counter()
    paths = seed.seed_linked(folder, linked, t0, TOKEN)
    seeded_in = time.perf_counter() - started
    say(f"  seeded {linked} linked contacts in {seeded_in:.1f}s; loading the sandbox")
    with seeded_sandbox(paths["sandbox"]) as sb:
        cfg = config_for(folder, sb.url)
        say(f"  sandbox ready after {time.perf_counter() - started:.1f}s; cycles running")
        before = sb.requests(limit=0)["by_operation"]
        result = run_worker(folder, {"mode": "incremental", "config": cfg, "changes": changes,
                                     "crm_db": str(paths["crm"]), "linked": linked, "reread": reread,
                                     "rounds": rounds})
        after = sb.requests(limit=0)["by_operation"]
    result["requests"] = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
    result["seed_seconds"] = round(seeded_in, 1)
    return result


def diagnose(root: Path, n: int) -> dict[str, Any]:
    """Where the overhead goes: the same initial sync with the per-request budget and journal
    writes switched off (a what-if, not a configuration), and the bare requests, at ``n``."""
    normal = initial_sync(root, n, "diag-normal", show=False)
    patched = initial_sync(root, n, "diag-no-accounting", no_accounting=True, show=False)
    bare = bare_run(n, normal["requests"]["by_operation"])
    return {"contacts": n, "engine_s": normal["seconds"], "engine_no_accounting_s": patched["seconds"],
            "bare_s": bare["seconds"], "overhead": ratio(normal["seconds"], bare["seconds"]),
            "overhead_no_accounting": ratio(patched["seconds"], bare["seconds"])}


# -- report ---------------------------------------------------------------------------------
def minimum_requests(n_created: int, tasks_by_dialer: dict[int, int], cycles: int, exported: int) -> int:
    """One upsert per contact (no bulk contact endpoint), ceil(tasks/1000) bulk imports per
    dialer, and per cycle one calls/log read plus the export pages its window needs (at
    least one; ``exported`` contacts read back in all, 1000 a page)."""
    imports = sum(math.ceil(t / 1000) for t in tasks_by_dialer.values())
    return n_created + imports + cycles + max(cycles, math.ceil(exported / 1000) + cycles - 1)


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("inf")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--linked", default="10000,100000,1000000")
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--reread-max", type=int, default=1_000_000,
                        help="re-read in full (resync) only worlds up to this size")
    parser.add_argument("--diagnose", type=int, default=10_000, metavar="N",
                        help="size of the overhead diagnosis (0: skip)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="incremental rounds per size (the median counts)")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", metavar="DIR")
    args = parser.parse_args(argv)
    if args.quick:
        args.contacts, args.linked, args.changes, args.diagnose = 3000, "1000,3000,10000", 100, 1000
    linked = [int(x) for x in args.linked.split(",") if x.strip()]
    root = Path(args.keep or tempfile.mkdtemp(prefix="syncd-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
                           "args": vars(args), "load": {}}
    say(f"syncd benchmark in {root} ({os.cpu_count()} CPUs)")
    say("[1/5] seed format vs a real sync of 300 contacts")
    res["format_problems"] = check_format(root)
    say("  same rows" if not res["format_problems"] else f"  DIFFERENT: {res['format_problems']}")

    say(f"[2/5] initial sync of {args.contacts} contacts")
    res["load"]["initial"] = os.getloadavg()[0]
    init = res["initial"] = initial_sync(root, args.contacts)
    ops = init["requests"]["by_operation"]
    say(f"  {init['seconds']}s, {round(args.contacts / init['seconds'])} records/s, peak "
        f"{init['peak_mb']} MB, requests {ops}")

    say("[3/5] bare script: the same Oki-Toki requests from a plain loop")
    res["load"]["bare"] = os.getloadavg()[0]
    bare = res["bare"] = bare_run(args.contacts, ops)
    say(f"  {bare['seconds']}s for {bare['sandbox_requests']}")
    people = [seed.person(i) for i in range(1, args.contacts + 1)]
    tasks = {d: sum(1 for p in people if p.status in seed.DIALERS and seed.DIALERS[p.status][0] == d)
             for d in (101, 102)}
    created = ops.get("contacts/add-update", 0)
    minimum = minimum_requests(args.contacts, tasks, len(init["cycles"]), args.contacts)
    res["ratios"] = {"overhead": ratio(init["seconds"], bare["seconds"]),
                     # CPU seconds of both processes (syncd or the loop, and the sandbox): less
                     # sensitive than wall time to what else the shared machine runs meanwhile
                     "overhead_cpu": ratio(init["cpu_s"] + init["sandbox_cpu_s"],
                                           bare["cpu_s"] + bare["sandbox_cpu_s"]),
                     "engine_cpu_vs_loop_cpu": ratio(init["cpu_s"], bare["cpu_s"]),
                     "requests_vs_minimum": ratio(init["requests"]["total"], minimum),
                     "minimum_requests": minimum, "created": created,
                     "imports_vs_minimum": ratio(ops.get("imports/tasks/add", 0),
                                                 sum(math.ceil(t / 1000) for t in tasks.values()))}

    res["incremental"] = {}
    for i, n in enumerate(linked):
        say(f"[4/5] incremental: {args.changes} CRM changes with {n} linked contacts ({i + 1}/{len(linked)})")
        res["load"][f"linked {n}"] = os.getloadavg()[0]
        r = res["incremental"][str(n)] = incremental(root, n, args.changes, n <= args.reread_max,
                                                      args.rounds)
        say(f"  change cycle median {r['change_median_s']}s of {[x['change_s'] for x in r['rounds']]} (echo cycle {r['echo']['seconds']}s), peak "
            f"{r['peak_mb']} MB, requests {r['requests']}"
            + (f"; full re-read {r['reread']['seconds']}s, peak {r['reread_peak_mb']} MB" if "reread" in r else ""))
    if args.diagnose:
        say(f"[5/5] diagnosis at {args.diagnose} contacts: the sync without per-request budget/journal writes")
        d = res["diagnosis"] = diagnose(root, args.diagnose)
        say(f"  engine {d['engine_s']}s, without them {d['engine_no_accounting_s']}s, bare {d['bare_s']}s")
    inc = res["incremental"]
    for x in inc.values():
        x.pop("edited_ids", None)
    sizes = sorted(int(k) for k in inc)
    lo, hi = str(sizes[0]), str(sizes[-1])
    # memory: the largest world against the next smaller one (against the smallest when
    # there are two sizes; no ratio with one size), never a size against itself
    mid = str(sizes[-2]) if len(sizes) > 1 else hi
    res["ratios"].update(
        # raw: cycles of different sizes run minutes apart, under whatever load the machine had
        cycle_hi_vs_lo_raw=ratio(inc[hi]["change_median_s"], inc[lo]["change_median_s"]),
        # corrected: each cycle in units of the bare loop of the same updates run right after it
        cycle_hi_vs_lo=ratio(inc[hi]["change_vs_bare_median"], inc[lo]["change_vs_bare_median"]),
        peak_hi_vs_mid=ratio(inc[hi]["peak_mb"], inc[mid]["peak_mb"]) if mid != hi else None,
        reread_peak_hi_vs_mid=(ratio(inc[hi]["reread_peak_mb"], inc[mid]["reread_peak_mb"])
                               if mid != hi and "reread_peak_mb" in inc[hi]
                               and "reread_peak_mb" in inc[mid] else None))
    (root / "results.json").write_text(json.dumps(res, indent=2, default=str))
    if args.json:
        print(json.dumps(res, indent=2, default=str))
    else:
        print_summary(res, lo, mid, hi)
    return 0


def print_summary(res: dict[str, Any], lo: str, mid: str, hi: str) -> None:
    r, init = res["ratios"], res["initial"]
    n = res["args"]["contacts"]
    print()
    print(f"Results ({res['machine']['cpus']} CPUs, Python {res['machine']['python']}; "
          f"1-minute load average at each phase: {res['load']})")
    print(f"  initial sync of {n}: {init['seconds']} s, {round(n / init['seconds'])} records/s, "
          f"peak RSS {init['peak_mb']} MB, Oki-Toki requests {init['requests']['total']} "
          f"{init['requests']['by_operation']}")
    print(f"  engine overhead vs bare requests: {init['seconds']} / {res['bare']['seconds']} s = "
          f"{r['overhead']} (target <= 1.5)")
    print(f"  the same in CPU seconds (syncd + sandbox vs loop + sandbox): "
          f"({init['cpu_s']} + {init['sandbox_cpu_s']}) / ({res['bare']['cpu_s']} + "
          f"{res['bare']['sandbox_cpu_s']}) = {r['overhead_cpu']}; syncd alone vs the loop alone "
          f"{r['engine_cpu_vs_loop_cpu']}")
    print(f"  requests vs minimum: {init['requests']['total']} / {r['minimum_requests']} = "
          f"{r['requests_vs_minimum']} (target <= 1.05)")
    for size, x in res["incremental"].items():
        extra = (f", full re-read {x['reread']['seconds']} s peak {x['reread_peak_mb']} MB"
                 if "reread" in x else "")
        print(f"  {size:>8} linked: change cycle {x['change_median_s']} s (median of "
              f"{[r['change_s'] for r in x['rounds']]}), echo cycle "
              f"{x['echo']['seconds']} s, peak {x['peak_mb']} MB{extra}; requests of a change "
              f"cycle {x['rounds'][0]['change_requests']}, of its echo cycle {x['rounds'][0]['echo_requests']}")
    for size, x in res["incremental"].items():
        print(f"  {size:>8} linked: the same {x['edited']} updates from a plain loop right after "
              f"each change cycle take {[r['bare_s'] for r in x['rounds']]} s; change cycle / that: "
              f"{[r['change_vs_bare'] for r in x['rounds']]}, median {x['change_vs_bare_median']}")
    print(f"  change cycle {hi} vs {lo} linked, each in units of its bare loop: {r['cycle_hi_vs_lo']} "
          f"(target <= 1.3; uncorrected {r['cycle_hi_vs_lo_raw']})")
    if mid != hi:
        print(f"  peak memory {hi} vs {mid} linked: incremental {r['peak_hi_vs_mid']}, "
              f"full re-read {r['reread_peak_hi_vs_mid']} (target <= 1.3 and < 300 MB)")
    print(f"  bulk task imports vs minimum: {r['imports_vs_minimum']} "
          f"({init['requests']['by_operation'].get('imports/tasks/add', 0)} imports)")
    if "diagnosis" in res:
        d = res["diagnosis"]
        print(f"  diagnosis at {d['contacts']}: overhead {d['overhead']}; without the per-request "
              f"budget/journal writes {d['overhead_no_accounting']}")


if __name__ == "__main__":
    sys.exit(main())
