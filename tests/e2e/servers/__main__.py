"""Run one CRM by hand: ``cd tests/e2e && python -m servers tryton|bottlecrm``; Ctrl-C stops."""

from __future__ import annotations

import sys
import time

from .bottlecrm import run_bottlecrm
from .tryton import run_tryton


def main(argv: list[str]) -> int:
    runners = {"tryton": run_tryton, "bottlecrm": run_bottlecrm}
    if len(argv) != 1 or argv[0] not in runners:
        print("usage: python -m servers tryton|bottlecrm", file=sys.stderr)
        return 2
    with runners[argv[0]]() as server:
        print(f"{argv[0]} is up: {server.options}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
