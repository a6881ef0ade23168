"""systemd/syncd.service: the required settings, `systemd-analyze verify`, exposure score."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "syncd.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed "
                                   "(apt-get install systemd)")


def _service() -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    section = None
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if line.startswith("["):
            section = line
        elif line and not line.startswith("#") and section == "[Service]":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_unit_has_the_contract_settings():
    s = _service()
    assert s["Type"] == ["notify"] and s["Restart"] == ["on-failure"]
    assert s["RestartPreventExitStatus"] == ["78"]
    assert s["WatchdogSec"] and s["DynamicUser"] == ["yes"]
    assert s["StateDirectory"] == ["syncd"] and s["ConfigurationDirectory"] == ["syncd"]
    assert s["LoadCredential"][0].startswith("okitoki:")
    assert s["ProtectSystem"] == ["strict"] and s["NoNewPrivileges"] == ["yes"]
    assert s["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert "@system-service" in s["SystemCallFilter"]


def _installed_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's syncd (verify checks it exists)."""
    syncd = Path(sys.executable).with_name("syncd")
    if not syncd.exists():
        pytest.skip("the syncd console script is not installed next to this Python")
    unit = tmp_path / "syncd.service"
    unit.write_text(UNIT.read_text().replace("/opt/syncd/bin/syncd", str(syncd)))
    return unit


@needs_analyze
def test_systemd_analyze_verify_passes(tmp_path):
    unit = _installed_copy(tmp_path)
    proc = subprocess.run([ANALYZE, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "syncd.service" not in proc.stderr, proc.stderr  # no warning about our unit


@needs_analyze
def test_security_exposure_is_low(tmp_path):
    unit = _installed_copy(tmp_path)
    proc = subprocess.run([ANALYZE, "security", "--offline=yes", "--no-pager", str(unit)],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    if "--offline" in proc.stderr and proc.returncode:
        pytest.skip("this systemd-analyze has no --offline")
    match = re.search(r"Overall exposure level for syncd\.service: (\d+\.\d+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    assert float(match.group(1)) <= 2.0   # docs/operations.md records the figure (1.0)
