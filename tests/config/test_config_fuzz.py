"""Generated configurations: at least 500 a run, each a valid one mutated (types, ranges,
empties, unicode, nesting, unknown keys, secret files). Whatever the file holds, ``syncd
check`` (called in-process, for speed) exits 0 or 78, and every problem line of a 78 names a
key that is real (in the file, or one the schema knows); never a traceback, never a hang (a
3 s deadline per configuration). A few nasty files go through the console script too."""

from __future__ import annotations

import ast
import copy
import io
import os
import re
import subprocess
import sys
import tomllib
from contextlib import redirect_stderr, redirect_stdout
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from cfgkit import BASE, ENV, FakeOptions, base, to_toml
import syncd.cli
from syncd.cli import main
from syncd.config import Config
from syncd.config_models import _unwrap

EXAMPLES = 500

# -- what a mutation puts in ------------------------------------------------------------------

_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=24)
_EDGES = st.sampled_from([
    "", " ", "\t\n", "0", "0s", "-1s", "30s", "1.5h", "3650d", "3651d", "9" * 40 + "d", "1e9s",
    "Europe", "America/Argentina", "../../etc/passwd", "Europe/Kyiv", "UA", "ua", "XX",
    "127.0.0.1:0", "127.0.0.1:65536", "[::1]:9410", "::1:9410", "999.1.1.1:80", "a b:80",
    "https://acme.oki-toki.net/?q=1", "https://x:0", "http://[::1", "sqlite:////tmp",
    "sqlite:///", "postgresql://u:p@h:99999/d", "mysql://x", "${NO_SUCH_VAR}", "${OKITOKI_API_TOKEN}",
    "é", "\u202e\u0000", "🙂" * 3, "x" * 5000, "off", "both", "newest", "forward",
])
_NUMBERS = st.one_of(
    st.integers(-2**70, 2**70),
    st.sampled_from([0, -1, 1, 2, 31, 32, 65535, 65536, 2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64]),
    st.floats(allow_nan=True, allow_infinity=True),
)
_SCALARS = st.one_of(st.booleans(), _NUMBERS, _TEXT, _EDGES)
_VALUES = st.one_of(
    _SCALARS,
    st.recursive(_SCALARS, lambda inner: st.lists(inner, max_size=3)
                 | st.dictionaries(_TEXT, inner, max_size=3), max_leaves=6),
    st.integers(1, 40).map(lambda depth: _nested(depth)),
    st.just([]), st.just({}),
)


def _nested(depth: int) -> Any:
    value: Any = "x"
    for _ in range(depth):
        value = [value]
    return value


def _paths(value: Any, loc: tuple = ()) -> list[tuple]:
    out = [loc] if loc else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, loc + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, loc + (i,))
    return out


PATHS = _paths(BASE) + [("daemon", "http_listen"), ("okitoki", "webhook_token"),
                        ("verify", "interval"), ("guard", "max_changed_share"),
                        ("okitoki", "daily_request_budget"), ("contacts", "create_in_crm")]
SECRET_FILES = ["fifo", "/dev/zero", "dir", "two-lines", "empty", "good", "huge", "missing"]


@st.composite
def mutations(draw) -> list[tuple]:
    ops = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["set", "set", "set", "delete", "unknown", "secret_file"]))
        if kind == "secret_file":
            ops.append((kind, draw(st.sampled_from(SECRET_FILES))))
        elif kind == "unknown":
            ops.append((kind, draw(st.sampled_from(PATHS)), draw(_TEXT), draw(_VALUES)))
        else:
            ops.append((kind, draw(st.sampled_from(PATHS)), draw(_VALUES) if kind == "set" else None))
    return ops


def _apply(cfg: dict, ops: list[tuple], files: dict[str, str]) -> dict:
    # st.just({}) is one object: copy each value on its own so no value ends up inside itself
    for op in [copy.deepcopy(op) for op in ops]:
        if op[0] == "secret_file":
            section = cfg.get("okitoki")
            if isinstance(section, dict):
                section.pop("api_token", None)
                section["api_token_file"] = files[op[1]]
            continue
        path = op[1]
        parent = cfg
        for part in path[:-1]:
            try:
                parent = parent[part]
            except (KeyError, IndexError, TypeError):
                parent = None
                break
        if parent is None or not isinstance(parent, (dict, list)):
            continue
        last = path[-1]
        if isinstance(parent, list) and (not isinstance(last, int) or last >= len(parent)):
            continue
        if isinstance(parent, dict) and isinstance(last, int):
            continue
        if op[0] == "set":
            parent[last] = op[2]
        elif op[0] == "delete":
            if isinstance(parent, dict):
                parent.pop(last, None)
        else:
            target = parent[last] if isinstance(parent, list) else parent.get(last)
            if isinstance(target, dict) and op[2]:
                target[op[2]] = op[3]
    return cfg


# -- what a problem line must name ---------------------------------------------------------------

_TOKEN = re.compile(r'\.?(?:("(?:[^"\\]|\\.)*")|([A-Za-z0-9_-]+))|\[(\d+)\]')


def _key_of(line: str) -> tuple | None:
    """``contacts.fields."a b".crm: ...`` → ("contacts", "fields", "a b", "crm")."""
    parts: list[Any] = []
    pos = 0
    while True:
        m = _TOKEN.match(line, pos)
        if not m or m.end() == pos:
            break
        quoted, bare, index = m.groups()
        parts.append(ast.literal_eval(quoted) if quoted else bare if bare else int(index))
        pos = m.end()
    return tuple(parts) if parts and line[pos:pos + 2] == ": " else None


def _in_data(data: Any, key: tuple) -> bool:
    for part in key:
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and isinstance(part, int) and part < len(data):
            data = data[part]
        else:
            return False
    return True


def _in_schema(key: tuple) -> bool:
    tp: Any = Config
    for i, part in enumerate(key):
        tp = _unwrap(tp)
        if key[:2] == ("crm", "options") and i == 2:
            return part in FakeOptions.model_fields
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return False
            tp = field.annotation
        elif getattr(tp, "__origin__", None) in (list, dict):
            tp = tp.__args__[-1]
        else:
            return False
    return True


def _assert_names_real_keys(problems: list[str], parsed: Any) -> None:
    assert problems
    for line in problems:
        assert "\n" not in line and "Traceback" not in line, line
        if line.startswith(("not valid TOML", "cannot read the configuration file")):
            continue
        key = _key_of(line)
        assert key is not None, f"no key path at the start of {line!r}"
        assert _in_data(parsed, key) or _in_schema(key), f"{key} is not a real key: {line!r}"


# -- the tests ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def secret_files(tmp_path_factory) -> dict[str, str]:
    tmp = tmp_path_factory.mktemp("secrets")
    os.mkfifo(tmp / "fifo")
    (tmp / "two-lines").write_text("tok-1\ntok-2\n")
    (tmp / "empty").write_text("")
    (tmp / "good").write_text("tok-good-1\n")
    with open(tmp / "huge", "wb") as f:
        f.truncate(1 << 30)
    files = {name: str(tmp / name) for name in SECRET_FILES}
    files["/dev/zero"], files["dir"] = "/dev/zero", str(tmp)
    return files


def test_generated_configurations_load_or_name_a_real_key(tmp_path, monkeypatch, secret_files):
    for key, value in ENV.items():
        monkeypatch.setenv(key, value)
    parser = syncd.cli.build_parser()     # built once: main() is what is under test, not argparse
    monkeypatch.setattr(syncd.cli, "build_parser", lambda: parser)
    path = tmp_path / "config.toml"
    outcomes = {"valid": 0, "invalid": 0}

    @settings(max_examples=EXAMPLES, deadline=3000, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(mutations())
    def load(ops):
        cfg = _apply(base(), ops, secret_files)
        try:
            text = to_toml(cfg) + "\n"
        except (TypeError, ValueError):
            return
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
        try:
            parsed = tomllib.loads(text)
        except (tomllib.TOMLDecodeError, RecursionError):
            parsed = None
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = main(["check", "-c", str(path)])
        assert code in (0, 78), err.getvalue()
        assert "Traceback" not in err.getvalue() and "syncd check: " not in err.getvalue()
        if code == 0:
            outcomes["valid"] += 1
            return
        outcomes["invalid"] += 1
        problems = [line.removeprefix(f"{path}: ") for line in err.getvalue().splitlines()
                    if line.startswith(f"{path}: ")]
        _assert_names_real_keys(problems, parsed)

    load()
    assert sum(outcomes.values()) >= EXAMPLES, outcomes
    assert outcomes["invalid"] > EXAMPLES // 2 and outcomes["valid"] > 0, outcomes


NASTY = {
    "deep-toml": "x = " + "[" * 3000 + "]" * 3000,
    "overflow": to_toml({**base(), "okitoki": {**base()["okitoki"], "timeout": "9" * 40 + "d"}}),
    "tz-folder": to_toml({**base(), "okitoki": {**base()["okitoki"], "timezone": "Europe"}}),
    "bool-for-number": to_toml({**base(), "guard": {"max_task_removals": True}}),
}


@pytest.mark.parametrize("name", list(NASTY))
def test_console_script_exits_78_without_a_traceback(tmp_path, name):
    path = tmp_path / "config.toml"
    path.write_text(NASTY[name] + "\n")
    proc = subprocess.run([sys.executable, "-m", "syncd.cli", "check", "-c", str(path)],
                          capture_output=True, text=True, timeout=30,
                          env={"PATH": "/usr/bin:/bin", **ENV})
    assert proc.returncode == 78, proc.stderr
    assert "Traceback" not in proc.stderr
    assert re.search(rf"^{re.escape(str(path))}: [a-z_]", proc.stderr, re.M), proc.stderr
