"""The engine overhead alone: phases 2 and 3 of ``bench_sync.py`` (the initial sync of N
contacts, then the same requests from the bare loop), repeated and interleaved.

    python bench/bench_overhead.py 5000 [--rounds 3] [--json] [--syncd-only]

Each round runs the initial sync, then the bare loop right after it (the same load of the
moment for both); the figure is the median of the rounds' ratios, with every round shown.
On a shared machine a single pair can be off by half either way; the median of interleaved
pairs is the one to compare. ``--syncd-only`` skips the bare loop (syncd's wall and CPU
time per round, to compare two versions of syncd with each other). Imports ``bench_sync`` and ``syncd`` from the current directory,
so ``cd COPY && python /path/to/bench_overhead.py N`` measures the copy's code.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
sys.path.insert(0, os.getcwd())

import bench_sync as b  # noqa: E402
from figures import print_figures  # noqa: E402


def syncd_round(root: Path, n: int, r: int) -> dict[str, object]:
    init = b.initial_sync(root, n, name=f"initial-{r}", show=False)
    return {"wall": init["seconds"], "cpu": init["cpu_s"], "sandbox_cpu": init["sandbox_cpu_s"],
            "load": round(os.getloadavg()[0], 2)}


def one_round(root: Path, n: int, r: int) -> dict[str, object]:
    init = b.initial_sync(root, n, name=f"initial-{r}", show=False)
    ops = init["requests"]["by_operation"]
    bare = b.bare_run(n, ops)
    return {
        "wall": [init["seconds"], bare["seconds"], b.ratio(init["seconds"], bare["seconds"])],
        "cpu": [init["cpu_s"], init["sandbox_cpu_s"], bare["cpu_s"], bare["sandbox_cpu_s"],
                b.ratio(init["cpu_s"] + init["sandbox_cpu_s"], bare["cpu_s"] + bare["sandbox_cpu_s"])],
        "engine_vs_loop_cpu": b.ratio(init["cpu_s"], bare["cpu_s"]),
        "ops": ops, "cycles": [c["seconds"] for c in init["cycles"]],
        "load": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("contacts", type=int, nargs="?", default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--syncd-only", action="store_true", help="no bare loop: syncd's own times")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="syncd-overhead-"))
    if args.syncd_only:
        runs = [syncd_round(root, args.contacts, r) for r in range(max(1, args.rounds))]
        print_figures({"contacts": args.contacts,
                       "syncd_wall_median": statistics.median(x["wall"] for x in runs),
                       "syncd_cpu_median": statistics.median(x["cpu"] for x in runs),
                       "rounds": runs}, as_json=args.json)
        return
    rounds = []
    for r in range(max(1, args.rounds)):
        rounds.append(one_round(root, args.contacts, r))
        if not args.json:
            w, c = rounds[-1]["wall"], rounds[-1]["cpu"]
            print(f"round {r + 1}: syncd {w[0]} s / loop {w[1]} s = {w[2]} (CPU ratio {c[4]}, "
                  f"load {rounds[-1]['load']})", flush=True)
    print_figures({
        "contacts": args.contacts,
        "overhead_wall_median": round(statistics.median(x["wall"][2] for x in rounds), 3),
        "overhead_cpu_median": round(statistics.median(x["cpu"][4] for x in rounds), 3),
        "engine_vs_loop_cpu_median": round(statistics.median(x["engine_vs_loop_cpu"] for x in rounds), 3),
        "rounds": rounds,
    }, as_json=args.json)


if __name__ == "__main__":
    main()
