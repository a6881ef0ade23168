"""The engine overhead alone: phases 2 and 3 of ``bench_sync.py`` (the initial sync of N
contacts, then the same requests from the bare loop), printed as one JSON line.

    python bench/bench_overhead.py 5000

For comparing two versions of the engine quickly (run them interleaved: the machine is
shared). Imports ``bench_sync`` and ``syncd`` from the current directory, so
``cd COPY && python /path/to/bench_overhead.py N`` measures the copy's code.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.join(os.getcwd(), "bench"))
sys.path.insert(0, os.getcwd())

import bench_sync as b  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    root = Path(tempfile.mkdtemp(prefix="syncd-overhead-"))
    init = b.initial_sync(root, n)
    ops = init["requests"]["by_operation"]
    bare = b.bare_run(n, ops)
    print(json.dumps({
        "n": n,
        "wall": [init["seconds"], bare["seconds"], b.ratio(init["seconds"], bare["seconds"])],
        "cpu": [init["cpu_s"], init["sandbox_cpu_s"], bare["cpu_s"], bare["sandbox_cpu_s"],
                b.ratio(init["cpu_s"] + init["sandbox_cpu_s"], bare["cpu_s"] + bare["sandbox_cpu_s"])],
        "engine_vs_loop_cpu": b.ratio(init["cpu_s"], bare["cpu_s"]),
        "ops": ops, "cycles": [c["seconds"] for c in init["cycles"]]}))


if __name__ == "__main__":
    main()
