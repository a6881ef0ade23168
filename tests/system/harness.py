"""A whole deployment on one machine: the sandbox as its own process, a SQL CRM, and
``syncd run`` as a subprocess driven like systemd would (start, SIGTERM, or SIGKILL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from syncd.demo import BLACKLIST, DIALER_CALLBACK, DIALER_NEW, demo_config
from syncd.testing.convergence import Verdict, check_convergence
from syncd.testing.scenario import SqlCrm, to_toml

DIALERS = {DIALER_NEW: ["new"], DIALER_CALLBACK: ["callback"]}


@dataclass
class Deployment:
    tmp: Path
    sandbox: Any           # SandboxHandle (subprocess)
    crm: SqlCrm
    config_path: Path
    config: dict[str, Any]

    @property
    def state_url(self) -> str:
        return self.config["daemon"]["state_url"]

    def syncd(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "syncd.cli", *args, "-c", str(self.config_path)],
                              capture_output=True, text=True, timeout=timeout, env=_env())

    def start(self) -> subprocess.Popen[str]:
        log = open(self.tmp / "syncd.log", "a", encoding="utf-8")
        return subprocess.Popen([sys.executable, "-m", "syncd.cli", "run", "-c", str(self.config_path)],
                                stdout=log, stderr=subprocess.STDOUT, text=True, env=_env())

    def verdict(self) -> Verdict:
        return check_convergence(self.state_url, self.crm, self.sandbox.state(),
                                 dialers=DIALERS, blacklist_id=BLACKLIST)

    def wait_converged(self, timeout: float) -> Verdict:
        """Poll until two checks in a row find nothing wrong (or the time is up)."""
        deadline, clean, verdict = time.monotonic() + timeout, 0, self.verdict()
        while time.monotonic() < deadline:
            verdict = self.verdict()
            clean = clean + 1 if verdict.ok else 0
            if clean >= 2:
                return verdict
            time.sleep(1.0)
        return verdict


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


def deploy(tmp: Path, sandbox: Any, people: list[Any], **overrides: Any) -> Deployment:
    """Write the CRM and the configuration, migrate the state database."""
    crm = SqlCrm(f"sqlite:///{tmp / 'crm.db'}").create()
    crm.insert(people)
    config = demo_config(tmp, sandbox.url, sandbox.token)
    for section, values in overrides.items():
        config.setdefault(section, {}).update(values)
    path = tmp / "config.toml"
    path.write_text(to_toml(config), encoding="utf-8")
    path.chmod(0o600)
    dep = Deployment(tmp, sandbox, crm, path, config)
    result = dep.syncd("migrate")
    assert result.returncode == 0, result.stderr
    return dep


def stop(proc: subprocess.Popen[str], timeout: float = 20) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout)
