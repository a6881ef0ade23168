"""``python fake_daemon_main.py``: a real daemon process around the fake syncer (for signals).

push: prints ``push-started``, works in batches until the stop event is set, then commits the
batch in flight (0.5s) and prints ``push-committed``. close() prints ``closed``.
"""

import sys
import time
from pathlib import Path

here = Path(__file__).resolve().parent
sys.path[:0] = [str(here), str(here.parent / "config")]

import pytest  # noqa: E402

from cfgkit import patch_connectors  # noqa: E402
from fakesyncer import FakeSyncer, Report, fast_config  # noqa: E402
from syncd.daemon import Daemon  # noqa: E402
from syncd.logs import configure_logging  # noqa: E402


class SlowSyncer(FakeSyncer):
    def push(self, stop):
        print("push-started", flush=True)
        while not stop.wait(0.05):
            pass
        time.sleep(0.5)
        print("push-committed", flush=True)
        return Report("push", {"sent": 1})

    def close(self):
        print("closed", flush=True)


if __name__ == "__main__":
    mp = pytest.MonkeyPatch()
    patch_connectors(mp)
    configure_logging("json", "info")
    config = fast_config(shutdown_timeout="5s")
    sys.exit(Daemon(SlowSyncer(), config).run())
