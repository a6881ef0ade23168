"""Journal exports in bounded memory: peak RSS of `syncd journal` exporting N API journal
rows, for two sizes, in each format (issue 10: "big exports stream, bounded memory on
1,000,000 rows"). Not part of the test suite.

    .venv/bin/python bench/bench_journal.py [--rows 100000,1000000] [--formats csv,json,html,xlsx]

Each export runs in its own process (``python -m syncd.cli journal ...``) so its peak RSS
(``ru_maxrss`` of the child) is its own. Prints one line per (format, size) and the ratio of
the peak at the largest size to the peak at the smallest: ~1.0 means memory does not grow
with the journal.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from syncd.store import open_store  # noqa: E402
from syncd.store.tables import ApiCall  # noqa: E402

OPS = ["create_task", "add_tasks", "remove_task", "upsert_contact", "export_contacts", "call_log"]


def seed(url: str, rows: int) -> None:
    store = open_store(url, create=True)
    start = datetime.now(UTC) - timedelta(days=20)
    step = timedelta(days=19) / rows
    batch = []
    with store.begin() as conn:
        for i in range(rows):
            status = 429 if i % 97 == 0 else 500 if i % 211 == 0 else 200
            batch.append({"at": start + step * i, "system": "okitoki" if i % 3 else "crm",
                          "operation": OPS[i % len(OPS)], "method": "POST", "status": status,
                          "duration_ms": 40 + i % 300, "attempt": 1 + (status != 200),
                          "error": None if status == 200 else f"HTTP {status}"})
            if len(batch) == 20_000:
                conn.execute(insert(ApiCall.__table__), batch)
                batch = []
        if batch:
            conn.execute(insert(ApiCall.__table__), batch)
    store.close()


def export(config: Path, fmt: str, out: Path) -> tuple[float, int]:
    """(seconds, peak RSS in MB) of one export in a child process."""
    t0 = time.monotonic()
    code = f"""
import resource, sys
from syncd.cli import main
rc = main(["journal", "-c", {str(config)!r}, "--since", "30d", "--format", {fmt!r}, "-o", {str(out)!r}])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(rc)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise SystemExit(done.stderr)
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    return time.monotonic() - t0, peak_kb // 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,1000000")
    parser.add_argument("--formats", default="csv,json,html,xlsx")
    args = parser.parse_args()
    sizes = [int(x) for x in args.rows.split(",")]
    formats = args.formats.split(",")
    peaks: dict[str, list[int]] = {f: [] for f in formats}
    with tempfile.TemporaryDirectory() as d:
        for n in sizes:
            db = Path(d) / f"state{n}.db"
            t0 = time.monotonic()
            seed(f"sqlite:///{db}", n)
            print(f"seeded {n:,} journal rows in {time.monotonic() - t0:.1f} s", flush=True)
            config = Path(d) / f"config{n}.toml"
            config.write_text(f'[daemon]\nstate_url = "sqlite:///{db}"\n[okitoki]\n'
                              f'url = "http://127.0.0.1:9"\napi_token = "bench-token-1"\n'
                              f'[crm]\nconnector = "sql"\n[crm.options]\nurl = "sqlite:///{d}/crm.db"\n')
            for fmt in formats:
                out = Path(d) / f"journal{n}.{fmt}"
                seconds, peak = export(config, fmt, out)
                peaks[fmt].append(peak)
                print(f"{fmt:5} {n:>9,} rows  {seconds:6.1f} s  peak RSS {peak:4d} MB  "
                      f"file {out.stat().st_size / 1e6:7.1f} MB", flush=True)
                out.unlink()
            os.unlink(db)
    for fmt, values in peaks.items():
        print(f"{fmt:5} peak RSS at {sizes[-1]:,} rows / at {sizes[0]:,} rows: {values[-1] / values[0]:.2f}")


if __name__ == "__main__":
    main()
