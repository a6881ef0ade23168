"""SIGTERM/SIGINT on a real daemon process mid-job: the batch commits, exit 0 in time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).with_name("fake_daemon_main.py")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_mid_job_commits_the_batch_and_exits_0_within_the_timeout(sig, tmp_path):
    env = {**os.environ, "NOTIFY_SOCKET": ""}
    proc = subprocess.Popen([sys.executable, str(SCRIPT)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.strip() == "push-started"
        time.sleep(0.2)                      # well inside the job
        started = time.monotonic()
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert elapsed < 5                       # shutdown_timeout
    assert out.splitlines() == ["push-committed", "closed"]
    assert '"event": "daemon_stopped"' in err and "signal_received" in err
