"""The Oki-Toki sandbox serving a pre-seeded data file, without writing it back.

    python bench/seeded_sandbox.py FILE [--settle-delay 0]

``syncd sandbox --data FILE`` would rewrite the whole file after every change (at 1,000,000
contacts a JSON dump of hundreds of MB, holding the state lock); the benchmark only needs the
state loaded once. Prints ``Oki-Toki sandbox listening on URL`` like ``syncd sandbox`` once
the data is in memory; stops on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from syncd.okitoki.sandbox.app import create_app  # noqa: E402
from syncd.okitoki.sandbox.persist import restore  # noqa: E402
from syncd.okitoki.sandbox.server import base_url, bind, make_server  # noqa: E402
from syncd.okitoki.sandbox.settings import SandboxSettings  # noqa: E402
from syncd.okitoki.sandbox.state import SandboxState  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--settle-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    settings = SandboxSettings(settle_delay=args.settle_delay)
    state = SandboxState(settings)
    with open(args.data, encoding="utf-8") as handle:
        restore(state, json.load(handle))
    app = create_app(state, settings=settings)
    sock = bind("127.0.0.1", 0)
    server = make_server(app)
    print(f"Oki-Toki sandbox listening on {base_url(sock)}", flush=True)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
