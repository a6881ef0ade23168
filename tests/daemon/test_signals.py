"""SIGTERM/SIGINT on a real daemon process mid-job: the batch commits, exit 0 in time."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
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


def test_a_stop_signal_while_run_is_still_loading_is_caught_not_fatal():
    """``syncd run`` catches SIGTERM before it loads the configuration and the engine (which
    takes seconds on a loaded machine): systemd stopping a starting service gets a clean
    stop, not a process killed by the signal (exit -15)."""
    from syncd.cli import _catch_stop_signals

    before = signal.getsignal(signal.SIGTERM)
    stop = threading.Event()
    restore = _catch_stop_signals(stop)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(2), "the early handler did not record the stop"
    finally:
        restore()
    assert signal.getsignal(signal.SIGTERM) is before, "the previous handler was not put back"


def test_a_daemon_asked_to_stop_before_it_started_exits_0_without_starting():
    """The stop recorded during loading reaches the daemon: it exits 0 at once and never runs
    its start-up (no connection, no migration, no job)."""
    from fakesyncer import FakeSyncer, fast_config
    from syncd.daemon import Daemon
    from syncd.notify import Notifier

    started = []
    syncer = FakeSyncer()
    syncer.startup = lambda: started.append(True)
    stop = threading.Event()
    stop.set()
    daemon = Daemon(syncer, fast_config(), notifier=Notifier(None), tick=0.05, stop_event=stop)
    assert daemon.run() == 0
    assert started == [] and syncer.count("push") == 0
