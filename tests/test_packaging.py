"""What the wheel ships: the Oki-Toki profile (the daemon refuses to start without it) and
every state-database migration."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["syncd/okitoki/profile.toml", "syncd/store/migrations/alembic.ini",
           "syncd/store/migrations/env.py", "syncd/store/migrations/script.py.mako"]


def _migrations() -> list[str]:
    return sorted(f"syncd/store/migrations/versions/{p.name}"
                  for p in (ROOT / "syncd/store/migrations/versions").glob("*.py"))


def test_the_package_data_config_names_the_profile_and_every_migration() -> None:
    """pyproject's package-data, as setuptools itself reads it, matches the data files."""
    from setuptools.config.pyprojecttoml import read_configuration
    config = read_configuration(ROOT / "pyproject.toml")
    patterns = config["tool"]["setuptools"]["package-data"]["syncd"]
    matched = {f"syncd/{p.relative_to(ROOT / 'syncd').as_posix()}"
               for pattern in patterns for p in (ROOT / "syncd").glob(pattern)}
    missing = [f for f in ["syncd/okitoki/profile.toml", "syncd/store/migrations/alembic.ini",
                           "syncd/store/migrations/script.py.mako", *_migrations()] if f not in matched]
    assert not missing, f"not in [tool.setuptools.package-data]: {missing}"


@pytest.mark.slow
def test_the_built_wheel_holds_the_profile_and_every_migration(tmp_path: Path) -> None:
    """``pip wheel`` on a copy of the sources (the work tree stays clean); skipped when pip
    cannot get the build backend (offline without setuptools and wheel in its indexes)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("syncd", "connectors"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    out = tmp_path / "wheel"
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=280)
    if done.returncode != 0 and ("No matching distribution" in done.stderr
                                 or "Could not find a version" in done.stderr):
        pytest.skip("pip cannot get the build backend here: " + done.stderr.strip().splitlines()[-1])
    assert done.returncode == 0, done.stderr[-2000:]
    [wheel] = out.glob("syncd-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [f for f in [*SHIPPED, *_migrations()] if f not in names]
    assert not missing, f"the wheel lacks {missing}"
