"""The cache directory, the per-CRM virtualenvs and small process helpers.

Installs are serialised by a file lock in the cache directory, so two test sessions on the
same machine never build the same virtualenv at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator, Sequence

__all__ = ["cache_dir", "file_lock", "find_python", "ensure_venv", "free_port",
           "stop_process", "own_session_dying_with_parent", "SetupError"]

MARKER = ".syncd-e2e-installed"


class SetupError(RuntimeError):
    """A CRM could not be installed or started; the message says which step and why."""


def cache_dir() -> Path:
    """``$SYNCD_E2E_CACHE`` or ``~/.cache/syncd-e2e`` (created)."""
    path = Path(os.environ.get("SYNCD_E2E_CACHE") or Path.home() / ".cache" / "syncd-e2e")
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def file_lock(name: str) -> Iterator[None]:
    """An exclusive lock shared by every process using the same cache directory."""
    with open(cache_dir() / f"{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def find_python(version: str, env_var: str) -> str | None:
    """An interpreter of ``version`` ("3.12"): ``$env_var``, pyenv, PATH, or this one."""
    explicit = os.environ.get(env_var)
    if explicit:
        return explicit
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    candidates = sorted(glob.glob(f"{pyenv_root}/versions/{version}.*/bin/python"), reverse=True)
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which(f"python{version}")
    if on_path:
        return on_path
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    return None


def _venv_ok(venv: Path, requirements: Sequence[str], import_check: str) -> bool:
    marker = venv / MARKER
    if not marker.is_file():
        return False
    try:
        recorded = json.loads(marker.read_text())
    except ValueError:
        return False
    if recorded.get("requirements") != list(requirements):
        return False
    python = venv / "bin" / "python"
    try:  # a broken interpreter or a missing package means: build it again
        probe = subprocess.run([str(python), "-c", import_check], capture_output=True,
                               timeout=60, cwd=venv)  # (some packages write logs into cwd)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def ensure_venv(name: str, python: str, requirements: Sequence[str],
                import_check: str) -> Path:
    """The virtualenv ``<cache>/<name>`` with ``requirements`` installed (built if needed).

    ``import_check`` is Python code run in the new virtualenv before the marker is written,
    so a half-installed environment is never mistaken for a good one.
    """
    venv = cache_dir() / name
    with file_lock(name):
        if _venv_ok(venv, requirements, import_check):
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        steps = [
            [python, "-m", "venv", str(venv)],
            [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
             "--disable-pip-version-check", *requirements],
            [str(venv / "bin" / "python"), "-c", import_check],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, cwd=cache_dir())
            if done.returncode != 0:
                shutil.rmtree(venv, ignore_errors=True)
                tail = (done.stderr or done.stdout)[-2000:]
                raise SetupError(f"{name}: {' '.join(step[:4])} ... failed:\n{tail}")
        (venv / MARKER).write_text(json.dumps({"requirements": list(requirements),
                                               "python": python, "at": time.time()}))
        return venv


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (the server binds it right after)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def own_session_dying_with_parent() -> None:
    """``preexec_fn`` of a server: its own session (so it is stopped as a group) and, on
    Linux, SIGTERM when the test process dies, even by SIGKILL (no orphaned servers)."""
    os.setsid()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, 15)  # PR_SET_PDEATHSIG, SIGTERM
    except (OSError, AttributeError):
        pass


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM the process group of ``proc``; SIGKILL it if it does not exit in time."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, 15)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait(timeout)


def log_tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"
