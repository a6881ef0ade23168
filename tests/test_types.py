"""The engine and the connector seam type-check (mypy, configured in pyproject.toml).

The engine reaches its connector, Oki-Toki client and store through typed seams (the
Protocols of ``syncd/connector.py``); a call that does not match them fails here, with
mypy's own report, instead of at run time in a daemon.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_engine_and_connector_protocol_are_type_clean() -> None:
    """``python -m mypy`` (files and strictness from ``[tool.mypy]``) reports no error."""
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary"],
                          cwd=ROOT, capture_output=True, text=True, timeout=240)
    report = (done.stdout + done.stderr).strip()
    assert done.returncode == 0, f"mypy found type errors:\n{report}"
