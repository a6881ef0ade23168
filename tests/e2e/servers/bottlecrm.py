"""A throwaway BottleCRM (``django-crm`` 1.35, Python 3.12, PostgreSQL) on loopback.

The first use builds the virtualenv and a migrated *template* database
(``syncd_bottlecrm_template``, marked ready by a comment once ``migrate`` finished, which takes
about 2.5 minutes); every run clones it (``CREATE DATABASE ... TEMPLATE``, a second or two),
bootstraps a user, an Org, an ADMIN Profile and a personal access token in
``django-admin shell``, serves it with gunicorn on a free port, and drops the clone after.
PostgreSQL is started (``pg_ctlcluster``) when it is down.
"""

from __future__ import annotations

import contextlib
import os
import secrets
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

__all__ = ["BottleCrmServer", "run_bottlecrm", "REQUIREMENTS", "TEMPLATE_DB"]

REQUIREMENTS = ("django-crm==1.35", "packaging")
TEMPLATE_DB = os.environ.get("SYNCD_E2E_BOTTLECRM_TEMPLATE", "syncd_bottlecrm_template")
TEMPLATE_MARK = "syncd-e2e: migrated django-crm==1.35"
RUN_PREFIX = "syncd_bottlecrm_run_"
PG = dict(host=os.environ.get("SYNCD_E2E_PGHOST", "127.0.0.1"),
          port=int(os.environ.get("SYNCD_E2E_PGPORT", "5432")),
          user=os.environ.get("SYNCD_E2E_PGUSER", "postgres"),
          password=os.environ.get("SYNCD_E2E_PGPASSWORD", ""))
START_TIMEOUT = 60.0

SETTINGS = """\
from crm.settings import *  # noqa: F401,F403

# No broker on a test machine: run Celery tasks inline (contact creation queues one).
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = False
CELERY_BROKER_URL = "memory://"
CELERY_RESULT_BACKEND = "cache+memory://"
"""

BOOTSTRAP = """\
from common.models import Org, Profile, PersonalAccessToken, User
user = User.objects.create_user(email="syncd-e2e@example.com", password="{password}")
org = Org.objects.create(name="syncd e2e")
profile = Profile.objects.create(user=user, org=org, role="ADMIN", is_active=True)
raw, _ = PersonalAccessToken.generate(profile, "syncd-e2e")
print("SYNCD_TOKEN=" + raw)
print("SYNCD_ORG=" + str(org.id))
"""


@dataclass(frozen=True)
class BottleCrmServer:
    """A running BottleCRM: REST under ``{base_url}/api/``, ``Authorization: Bearer token``."""

    base_url: str
    token: str
    org_id: str
    database: str
    workdir: Path

    @property
    def options(self) -> dict[str, object]:
        """The ``[crm.options]`` of the ``bottlecrm`` connector for this server."""
        return {"url": self.base_url, "token": self.token}


def _connect(dbname: str = "postgres"):
    import psycopg  # the test extra installs it

    return psycopg.connect(dbname=dbname, autocommit=True, connect_timeout=5, **PG)


def ensure_postgres() -> None:
    """Connect to the local PostgreSQL; start its clusters with pg_ctlcluster when down."""
    try:
        _connect().close()
        return
    except Exception:
        pass
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    for version in versions:
        subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"],
                       capture_output=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            _connect().close()
            return
        except Exception as exc:
            last = exc
            time.sleep(0.5)
    raise SetupError(f"bottlecrm: PostgreSQL at {PG['host']}:{PG['port']} is down and did not "
                     f"start: {last}")


def _environment(workdir: Path, dbname: str) -> dict[str, str]:
    """Environment of every django-admin/gunicorn run; run them with ``cwd=workdir`` too
    (crm.settings writes server.log and security_audit.log into the working directory)."""
    (workdir / "syncd_bottlecrm_settings.py").write_text(SETTINGS)
    return {
        **os.environ,
        "PYTHONPATH": str(workdir),
        "DJANGO_SETTINGS_MODULE": "syncd_bottlecrm_settings",
        "DBNAME": dbname, "DBUSER": PG["user"], "DBPASSWORD": PG["password"],
        "DBHOST": PG["host"], "DBPORT": str(PG["port"]),
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DEBUG": "False",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
    }


def _template_ready(conn) -> bool:
    row = conn.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                       "WHERE datname = %s", (TEMPLATE_DB,)).fetchone()
    return bool(row) and row[0] == TEMPLATE_MARK


def _ensure_template(venv: Path) -> None:
    """Create and migrate the template database once (about 2.5 minutes)."""
    with file_lock("bottlecrm-template"), _connect() as conn:
        if _template_ready(conn):
            return
        conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{TEMPLATE_DB}"')
        workdir = Path(tempfile.mkdtemp(prefix="syncd-bottlecrm-migrate-"))
        try:
            done = subprocess.run([str(venv / "bin" / "django-admin"), "migrate", "--noinput"],
                                  env=_environment(workdir, TEMPLATE_DB), cwd=workdir,
                                  capture_output=True, text=True)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        if done.returncode != 0:
            conn.execute(f'DROP DATABASE IF EXISTS "{TEMPLATE_DB}" WITH (FORCE)')
            raise SetupError(f"bottlecrm: django-admin migrate failed:\n{(done.stderr or done.stdout)[-2000:]}")
        conn.execute(f"COMMENT ON DATABASE \"{TEMPLATE_DB}\" IS '{TEMPLATE_MARK}'")


def _drop_stale_runs(conn) -> None:
    """Drop run databases left by sessions that died (their pid is gone)."""
    names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                        (RUN_PREFIX + "%",))]
    for name in names:
        pid = name[len(RUN_PREFIX):].split("_", 1)[0]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def run_bottlecrm(workdir: Path | None = None) -> Iterator[BottleCrmServer]:
    """Install (cached), start a fresh BottleCRM and yield it; stop it and drop its database after."""
    python = find_python("3.12", "SYNCD_E2E_BOTTLECRM_PYTHON")
    if python is None:
        raise SetupError("bottlecrm: no Python 3.12 interpreter (set SYNCD_E2E_BOTTLECRM_PYTHON)")
    venv = ensure_venv("bottlecrm", python, REQUIREMENTS,
                       "import django, crm.settings, contacts, interactions, gunicorn")
    ensure_postgres()
    _ensure_template(venv)
    own_dir = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="syncd-bottlecrm-")) if workdir is None else workdir
    dbname = f"{RUN_PREFIX}{os.getpid()}_{secrets.token_hex(3)}"
    with _connect() as conn:
        _drop_stale_runs(conn)
        conn.execute(f'CREATE DATABASE "{dbname}" TEMPLATE "{TEMPLATE_DB}"')
    try:
        env = _environment(workdir, dbname)
        done = subprocess.run([str(venv / "bin" / "django-admin"), "shell", "-c",
                               BOOTSTRAP.format(password=secrets.token_urlsafe(16))],
                              env=env, cwd=workdir, capture_output=True, text=True)
        values = dict(line.split("=", 1) for line in done.stdout.splitlines()
                      if line.startswith("SYNCD_"))
        if done.returncode != 0 or "SYNCD_TOKEN" not in values:
            raise SetupError(f"bottlecrm: bootstrap in django-admin shell failed:\n"
                             f"{(done.stderr or done.stdout)[-2000:]}")
        port = free_port()
        log = workdir / "gunicorn.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(venv / "bin" / "gunicorn"), "crm.wsgi:application", "--bind",
                 f"127.0.0.1:{port}", "--workers", "1", "--threads", "8", "--timeout", "60"],
                env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT,
                preexec_fn=own_session_dying_with_parent)
        try:
            server = BottleCrmServer(f"http://127.0.0.1:{port}", values["SYNCD_TOKEN"],
                                     values.get("SYNCD_ORG", ""), dbname, workdir)
            _wait_ready(server, proc, log)
            yield server
        finally:
            stop_process(proc)
    finally:
        with contextlib.suppress(Exception), _connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)


def _wait_ready(server: BottleCrmServer, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SetupError(f"bottlecrm: gunicorn exited with {proc.returncode}:\n{log_tail(log)}")
        try:
            response = httpx.get(f"{server.base_url}/api/contacts/?limit=1",
                                 headers={"Authorization": f"Bearer {server.token}"}, timeout=10)
            if response.status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    raise SetupError(f"bottlecrm: not ready after {START_TIMEOUT:.0f} s:\n{log_tail(log)}")
