"""Helpers shared by the config, CLI and daemon tests: a tiny TOML writer, fake connectors.

The fake connectors stand in for the entry-point registry (an unreachable seam in tests:
installing packages per test is not possible), so ``load_connector`` is patched to know them.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from syncd.connector import Capabilities

TOKEN = "tok-3f9a1c7e5b2d"          # the Oki-Toki API token in valid configs
WEBHOOK = "whk-8c1d2e3f4a5b"

BASE: dict[str, Any] = {
    "daemon": {"state_url": "sqlite:///state.db", "shutdown_timeout": "5s"},
    "okitoki": {"url": "https://acme.oki-toki.net", "api_token": "${OKITOKI_API_TOKEN}",
                "timezone": "Europe/Kyiv"},
    "crm": {"connector": "fake", "poll_interval": "30s", "options": {"url": "sqlite:///crm.db"}},
    "contacts": {"default_region": "UA", "fields": {
        "name": {"crm": "name", "okitoki": "name", "sync": "both", "conflict": "newest"},
        "status": {"crm": "status", "okitoki": "details.status", "sync": "to_okitoki"},
    }},
    "dialer": [
        {"name": "new-leads", "dialer_id": 101, "when": {"status": ["new", "callback"]},
         "priority": 1, "ttl": "3d", "region_from_phone": True},
        {"name": "reactivation", "dialer_id": 102, "when": {"status": ["lost"]}},
    ],
    "calls": {"to_crm": True, "status_order": ["new", "callback", "contacted", "won", "lost"],
              "outcome_status": {"answered": "contacted", "no_answer": "callback"}},
    "do_not_call": {"crm_field": "do_not_call", "list_id": 7},
}
ENV = {"OKITOKI_API_TOKEN": TOKEN}


def base() -> dict[str, Any]:
    return copy.deepcopy(BASE)


_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Enough TOML for these tests: tables, arrays of tables, inline tables below."""
    scalars = [f"{json.dumps(k)} = {_value(v)}" for k, v in data.items()
               if not isinstance(v, dict) and not (isinstance(v, list) and v and all(isinstance(x, dict) for x in v))]
    out = [f"[{prefix}]"] if prefix and scalars else []
    out += scalars
    for k, v in data.items():
        key = k if _BARE.match(k) else json.dumps(k)
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(v, dict):
            if prefix and k == "fields":  # contacts.fields: one inline table per field
                out.append(f"[{name}]")
                out += [f"{json.dumps(f)} = {_value(m)}" for f, m in v.items()]
            else:
                out.append(to_toml(v, name) or f"[{name}]")
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                out.append(f"[[{name}]]")
                out += [f"{json.dumps(ik)} = {_value(iv)}" for ik, iv in item.items()]
    return "\n".join(out)


def write(tmp: Path, data: dict[str, Any] | str, name: str = "config.toml", mode: int = 0o600) -> Path:
    path = tmp / name
    path.write_text(data if isinstance(data, str) else to_toml(data) + "\n")
    path.chmod(mode)
    return path


class FakeOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str
    api_key: str | None = None


class FakeConnector:
    """Can do everything the configuration may ask for."""
    name = "fake"
    Options = FakeOptions
    capabilities = Capabilities(calls_write=True, do_not_call=True)


class LimitedConnector:
    """Reads and writes contacts only: no calls, no do-not-call flag, cannot create."""
    name = "limited"
    Options = FakeOptions
    capabilities = Capabilities(calls_write=False, do_not_call=False, contacts_create=False)


FAKES = {"fake": FakeConnector, "limited": LimitedConnector}


def patch_connectors(monkeypatch: Any) -> None:
    import syncd.connector

    original = syncd.connector.load_connector
    monkeypatch.setattr(syncd.connector, "load_connector",
                        lambda name: FAKES[name] if name in FAKES else original(name))


def reset_logging() -> None:
    """Undo configure_logging (a CLI test points it at capsys' stream, closed afterwards)."""
    import logging

    import structlog

    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in [h for h in root.handlers if h.get_name() == "syncd"]:
        root.removeHandler(handler)
