"""Inputs that are files or servers: secret files that hang, never end or hold two lines; state
database URLs that point at a folder, a read-only place or an unreachable server. Each is one
line naming the key and exit 78, never a hang or a driver's traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import types

import pytest

import syncd.engine
import syncd.secret_file
from cfgkit import base, write
from connectors._secrets import secret_from
from syncd.cli import main
from syncd.errors import ConfigError
from syncd.store import migrate

UNREACHABLE_PG = "postgresql+psycopg://postgres@127.0.0.1:1/syncd"


def _token_file(tmp_path, target) -> dict:
    cfg = base()
    del cfg["okitoki"]["api_token"]
    cfg["okitoki"]["api_token_file"] = str(target)
    cfg["daemon"]["state_url"] = f"sqlite:///{tmp_path}/state.db"
    return cfg


def _check(tmp_path, capsys, cfg, *extra) -> tuple[int, str, str]:
    path = write(tmp_path, cfg)
    code = main(["check", *extra, "-c", str(path)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "token.fifo"
    os.mkfifo(path)
    return path


@pytest.mark.parametrize("make,words", [
    (lambda tmp: _fifo(tmp), "is not a regular file (a FIFO)"),
    (lambda tmp: "/dev/zero", "is not a regular file (a character device)"),
    (lambda tmp: tmp, "is not a regular file (a directory)"),
    (lambda tmp: _written(tmp, "tok-1\ntok-2\n"), "more than one line"),
    (lambda tmp: _written(tmp, "\n \n"), "is empty"),
    (lambda tmp: _written(tmp, b"\xff\xfe tok"), "not UTF-8"),
    (lambda tmp: _sparse(tmp, 1 << 30), "larger than 16 KiB"),
], ids=["fifo", "endless-device", "directory", "two-lines", "blank", "not-utf8", "one-gigabyte"])
def test_token_file_that_is_no_secret_names_the_key(tmp_path, capsys, make, words):
    started = time.monotonic()
    code, out, err = _check(tmp_path, capsys, _token_file(tmp_path, make(tmp_path)))
    assert code == 78, err
    assert any(" okitoki.api_token_file: " in line and words in line for line in err.splitlines()), err
    assert time.monotonic() - started < 5


def _fifo(tmp):
    path = tmp / "fifo"
    os.mkfifo(path)
    return path


def _written(tmp, content):
    path = tmp / "secret"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _sparse(tmp, size):
    path = tmp / "huge"
    with open(path, "wb") as f:
        f.truncate(size)
    return path


def test_token_file_with_one_line_and_a_newline_is_read(tmp_path, capsys):
    code, out, err = _check(tmp_path, capsys, _token_file(tmp_path, _written(tmp_path, " tok-9a8b\n")))
    assert code == 0, err


def test_a_secret_file_that_hangs_times_out(monkeypatch, tmp_path):
    # A hung network mount cannot be made here: the read itself is what blocks.
    monkeypatch.setattr(syncd.secret_file, "_read_capped", lambda p, result: time.sleep(30))
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"was not read within 0.2s"):
        syncd.secret_file.read_secret_file(_written(tmp_path, "tok"), timeout=0.2)
    assert time.monotonic() - started < 2


def test_connector_secret_file_that_is_a_fifo_names_the_option(tmp_path, capsys, fifo):
    cfg = _token_file(tmp_path, _written(tmp_path, "tok-1"))
    cfg["crm"]["options"]["api_key_file"] = str(fifo)
    code, out, err = _check(tmp_path, capsys, cfg)
    assert code == 78
    assert "crm.options.api_key_file: " in err and "a FIFO" in err


def test_secret_from_of_a_connector_built_directly_names_the_option(fifo, tmp_path):
    with pytest.raises(ConfigError, match=r"^crm.options.token_file: .*a FIFO"):
        secret_from(None, str(fifo), "token")
    with pytest.raises(ConfigError, match="more than one line"):
        secret_from(None, _written(tmp_path, "a\nb"), "token")
    assert secret_from(None, _written(tmp_path, "tok-1\n"), "token") == "tok-1"


@pytest.mark.parametrize("command,target", [("check", "fifo"), ("check", "/dev/zero"),
                                            ("run", "fifo")])
def test_the_console_script_never_hangs_on_a_secret_file(tmp_path, command, target):
    token = _fifo(tmp_path) if target == "fifo" else target
    path = write(tmp_path, _token_file(tmp_path, token))
    proc = subprocess.run([sys.executable, "-m", "syncd.cli", command, "-c", str(path)],
                          capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 78, proc.stderr
    assert "Traceback" not in proc.stderr and "okitoki.api_token_file" in proc.stderr


def test_toml_nested_beyond_the_parser_is_a_config_error(tmp_path, capsys):
    path = write(tmp_path, "x = " + "[" * 5000 + "]" * 5000 + "\n")
    assert main(["check", "-c", str(path)]) == 78
    assert "nested deeper" in capsys.readouterr().err


# -- the state database -----------------------------------------------------------------------

@pytest.mark.parametrize("url,words", [
    (UNREACHABLE_PG, "cannot create or open the state database"),
    ("sqlite:////proc/syncd-no-such-place/state.db", "cannot create or open the state database"),
], ids=["unreachable-server", "read-only-place"])
def test_migrate_names_the_state_url_instead_of_a_driver_error(tmp_path, capsys, url, words):
    cfg = base()
    cfg["daemon"]["state_url"] = url
    code = main(["migrate", "-c", str(write(tmp_path, cfg))])
    err = capsys.readouterr().err
    assert code == 78, err
    assert f"daemon.state_url: {words}" in err
    assert "Traceback" not in err and "sqlalchemy" not in err.lower()


def test_migrate_of_a_folder_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="^daemon.state_url: cannot create or open"):
        migrate(f"sqlite:///{tmp_path}")


@pytest.fixture
def syncer(monkeypatch):
    """build_syncer is the engine's seam; the sides answer health checks as told."""
    def install(crm_health=lambda: None):
        ok = types.SimpleNamespace(health_check=lambda: None)
        crm = types.SimpleNamespace(health_check=crm_health)
        monkeypatch.setattr(syncd.engine, "build_syncer",
                            lambda config, **kw: types.SimpleNamespace(okitoki=ok, crm=crm,
                                                                       close=lambda: None),
                            raising=False)
    return install


def test_check_online_proves_the_state_database_and_the_listener(tmp_path, capsys, syncer):
    syncer()
    cfg = base()
    cfg["daemon"]["state_url"] = f"sqlite:///{tmp_path}/new/state.db"
    cfg["daemon"]["http_listen"] = "127.0.0.1:0"
    code, out, err = _check(tmp_path, capsys, cfg, "--online")
    assert code == 0, err
    assert "configuration is valid" in out


def test_check_online_with_an_unreachable_state_database_exits_78(tmp_path, capsys, syncer):
    syncer()
    cfg = base()
    cfg["daemon"]["state_url"] = UNREACHABLE_PG
    code, out, err = _check(tmp_path, capsys, cfg, "--online")
    assert code == 78
    assert "daemon.state_url: cannot write to the state database" in err
    assert "configuration is valid" not in out


def test_check_online_with_an_address_not_here_exits_78(tmp_path, capsys, syncer):
    syncer()
    cfg = base()
    cfg["daemon"]["state_url"] = f"sqlite:///{tmp_path}/state.db"
    cfg["daemon"]["http_listen"] = "192.0.2.1:9410"   # TEST-NET-1: never a local address
    code, out, err = _check(tmp_path, capsys, cfg, "--online")
    assert code == 78
    assert "daemon.http_listen: cannot listen on 192.0.2.1:9410" in err


def test_check_online_warns_when_the_port_is_taken(tmp_path, capsys, syncer):
    syncer()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        cfg = base()
        cfg["daemon"]["state_url"] = f"sqlite:///{tmp_path}/state.db"
        cfg["daemon"]["http_listen"] = f"127.0.0.1:{taken.getsockname()[1]}"
        code, out, err = _check(tmp_path, capsys, cfg, "--online")
    assert code == 0
    assert "warning: " in err and "daemon.http_listen: " in err and "is in use now" in err


def test_check_online_with_a_missing_table_does_not_also_say_valid(tmp_path, capsys, syncer):
    def missing_table():
        raise ConfigError('crm.options.contacts_table: table "leedz" does not exist')

    syncer(crm_health=missing_table)
    cfg = base()
    cfg["daemon"]["state_url"] = f"sqlite:///{tmp_path}/state.db"
    code, out, err = _check(tmp_path, capsys, cfg, "--online")
    assert code == 78
    assert 'crm.options.contacts_table: table "leedz"' in err
    assert "1 configuration problem" in err and "configuration is valid" not in out


def test_check_online_proves_a_writable_postgresql_and_leaves_nothing(tmp_path, capsys, syncer):
    from sqlalchemy import create_engine, inspect

    url = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    try:
        engine = create_engine(url, connect_args={"connect_timeout": 3})
        before = set(inspect(engine).get_table_names())
    except Exception:  # noqa: BLE001
        pytest.skip("no local PostgreSQL")
    syncer()
    cfg = base()
    cfg["daemon"]["state_url"] = url
    code, out, err = _check(tmp_path, capsys, cfg, "--online")
    after = set(inspect(engine).get_table_names())
    engine.dispose()
    assert code == 0, err
    assert after == before
