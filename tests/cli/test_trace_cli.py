"""`syncd trace` on the command line: exit 1 when nothing is known, 2 for a name that is no
id and no number, JSON on request."""

from __future__ import annotations

import json

from cfgkit import base, write
from syncd.cli import main
from syncd.store import open_store


def _cfg(tmp_path):
    cfg = base()
    cfg["daemon"]["state_url"] = f"sqlite:///{tmp_path / 'state.db'}"
    open_store(cfg["daemon"]["state_url"], create=True).close()
    return str(write(tmp_path, cfg))


def test_trace_exit_codes_and_json(tmp_path, capsys):
    cfg = _cfg(tmp_path)
    assert main(["trace", "crm:42", "-c", cfg]) == 1
    assert "crm id 42: 0 contact(s)" in capsys.readouterr().out
    assert main(["trace", "not a number", "-c", cfg]) == 2
    assert "neither crm:ID" in capsys.readouterr().err
    assert main(["trace", "+380671234567", "--json", "-c", cfg]) == 1
    assert json.loads(capsys.readouterr().out)["looked_up"] == "phone +380671234567"


def test_conflicts_resolve_usage_and_unknown_ids(tmp_path, capsys):
    cfg = _cfg(tmp_path)
    assert main(["conflicts", "resolve", "7", "--take", "crm", "-c", cfg]) == 1
    assert "no conflict with id 7" in capsys.readouterr().err
    assert main(["conflicts", "resolve", "7", "--take", "value", "-c", cfg]) == 2
    assert main(["conflicts", "resolve", "--take", "crm", "-c", cfg]) == 2
    assert "usage: resolve ID --take" in capsys.readouterr().err
    assert main(["conflicts", "-c", cfg]) == 0 and "no conflicts" in capsys.readouterr().out


def test_holds_commands(tmp_path, capsys):
    cfg = _cfg(tmp_path)
    assert main(["holds", "-c", cfg]) == 0 and "no holds" in capsys.readouterr().out
    assert main(["holds", "release", "-c", cfg]) == 2
    assert main(["holds", "drop", "5", "-c", cfg]) == 1
    assert "no hold with id 5" in capsys.readouterr().err


def test_merge_candidates_commands(tmp_path, capsys):
    cfg = _cfg(tmp_path)
    assert main(["merge-candidates", "-c", cfg]) == 0 and "no merge candidates" in capsys.readouterr().out
    assert main(["merge-candidates", "link", "3", "-c", cfg]) == 2
    assert main(["merge-candidates", "dismiss", "3", "-c", cfg]) == 1
    assert "no merge candidate with id 3" in capsys.readouterr().err
