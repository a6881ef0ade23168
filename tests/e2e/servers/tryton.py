"""A throwaway Tryton server (``trytond`` + ``trytond-party`` 8.x, SQLite) on loopback.

The first use builds the virtualenv and a template database (modules ``party`` and its
dependencies activated, admin password from TRYTONPASSFILE); every run copies the template
into its own directory, creates a fresh REST key (``res.user.application``, application
``rest``) for the admin in ``trytond-console`` and starts ``trytond`` on a free port.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx

from ._venv import (SetupError, ensure_venv, file_lock, find_python, free_port, log_tail,
                    own_session_dying_with_parent, stop_process)

__all__ = ["TrytonServer", "run_tryton", "REQUIREMENTS"]

REQUIREMENTS = ("trytond>=8,<9", "trytond-party>=8,<9")
DATABASE = "syncd"
START_TIMEOUT = 90.0

_MAKE_KEY = """\
import sys
User = pool.get('res.user')
Application = pool.get('res.user.application')
admin, = User.search([('login', '=', 'admin')])
app, = Application.create([{'user': admin.id, 'application': 'rest'}])
if app.state != 'validated':
    Application.validate_([app])
transaction.commit()
sys.stdout.write('SYNCD_KEY=' + app.key + '\\n')
"""


@dataclass(frozen=True)
class TrytonServer:
    """A running Tryton: REST under ``{base_url}/{database}/rest/``, Bearer ``api_key``."""

    base_url: str
    database: str
    api_key: str
    workdir: Path

    @property
    def options(self) -> dict[str, object]:
        """The ``[crm.options]`` of the ``tryton`` connector for this server."""
        return {"url": self.base_url, "database": self.database, "api_key": self.api_key}


def _config(path: Path, data_dir: Path, port: int) -> Path:
    path.write_text(
        "[database]\nuri = sqlite://\n"
        f"path = {data_dir}\n"
        "[web]\n"
        f"listen = 127.0.0.1:{port}\n"
    )
    return path


def _run(cmd: list[str], step: str, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if done.returncode != 0:
        raise SetupError(f"tryton: {step} failed (exit {done.returncode}):\n"
                         f"{(done.stderr or done.stdout)[-2000:]}")
    return done


def _template(venv: Path) -> Path:
    """``<venv>/template/syncd.sqlite``: a database with ``party`` activated (built once)."""
    template_dir = venv / "template"
    ready = template_dir / ".ready"
    with file_lock("tryton-template"):
        if ready.is_file():
            return template_dir / f"{DATABASE}.sqlite"
        shutil.rmtree(template_dir, ignore_errors=True)
        template_dir.mkdir(parents=True)
        conf = _config(template_dir / "trytond.conf", template_dir, free_port())
        (template_dir / f"{DATABASE}.sqlite").touch()
        passfile = template_dir / "adminpass"
        passfile.write_text("admin\n")
        _run([str(venv / "bin" / "trytond-admin"), "-c", str(conf), "-d", DATABASE, "--all",
              "-u", "party", "--activate-dependencies", "--email", "admin@example.com"],
             "trytond-admin (initialise the template database)",
             env={**os.environ, "TRYTONPASSFILE": str(passfile)}, cwd=template_dir)
        ready.touch()
        return template_dir / f"{DATABASE}.sqlite"


@contextlib.contextmanager
def run_tryton(workdir: Path | None = None) -> Iterator[TrytonServer]:
    """Install (cached), start a fresh Tryton and yield it; stop it and remove its files after."""
    python = find_python("3.11", "SYNCD_E2E_TRYTON_PYTHON")
    if python is None:
        raise SetupError("tryton: no Python 3.11 interpreter (set SYNCD_E2E_TRYTON_PYTHON)")
    venv = ensure_venv("tryton", python, REQUIREMENTS,
                       "import trytond, trytond.modules.party")
    template = _template(venv)
    own_dir = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="syncd-tryton-")) if workdir is None else workdir
    try:
        data_dir = workdir / "data"
        data_dir.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, data_dir / f"{DATABASE}.sqlite")
        port = free_port()
        conf = _config(workdir / "trytond.conf", data_dir, port)
        script = workdir / "make_key.py"
        script.write_text(_MAKE_KEY)
        done = _run([str(venv / "bin" / "trytond-console"), "-c", str(conf), "-d", DATABASE,
                     "-f", str(script)], "trytond-console (create the REST key)", cwd=workdir)
        key = next((line.split("=", 1)[1] for line in done.stdout.splitlines()
                    if line.startswith("SYNCD_KEY=")), None)
        if not key:
            raise SetupError(f"tryton: no REST key printed by trytond-console:\n{done.stdout[-1000:]}")
        log = workdir / "trytond.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([str(venv / "bin" / "trytond"), "-c", str(conf)],
                                    stdout=out, stderr=subprocess.STDOUT, cwd=workdir,
                                    preexec_fn=own_session_dying_with_parent)
        try:
            server = TrytonServer(f"http://127.0.0.1:{port}", DATABASE, key, workdir)
            _wait_ready(server, proc, log)
            yield server
        finally:
            stop_process(proc)
    finally:
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)


def _wait_ready(server: TrytonServer, proc: subprocess.Popen, log: Path) -> None:
    url = f"{server.base_url}/{server.database}/rest/model/party.party?s=1"
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SetupError(f"tryton: trytond exited with {proc.returncode}:\n{log_tail(log)}")
        try:
            response = httpx.get(url, headers={"Authorization": f"Bearer {server.api_key}"},
                                 timeout=5)
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SetupError(f"tryton: not ready after {START_TIMEOUT:.0f} s:\n{log_tail(log)}")
