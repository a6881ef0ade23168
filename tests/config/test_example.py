"""config.example.toml loads, and it mentions every key of the configuration models."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel

import cfgkit
from syncd.config import Config, load_config, model_at

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.toml"


def _keys(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str]]:
    """(section path, key) for every field, walking into nested models."""
    out = []
    for name in model.model_fields:
        out.append((prefix, name))
        sub = model_at(model, [name, 0]) or model_at(model, [name])
        if sub is not None and sub is not model:
            out += _keys(sub, f"{prefix}.{name}" if prefix else name)
    return out


def test_example_loads(monkeypatch):
    import syncd.connector

    real = syncd.connector.load_connector
    try:
        real("sql")
    except Exception:  # the sql connector is another part: stand in for it until it exists
        class Options(BaseModel):
            url: str
        monkeypatch.setattr(syncd.connector, "load_connector",
                            lambda name: type("Sql", (cfgkit.FakeConnector,), {"Options": Options}))
    config = load_config(EXAMPLE, environ={"OKITOKI_API_TOKEN": "example-token-123"})
    assert config.dialer[0].ttl.days == 3 and config.okitoki.api_token == "example-token-123"


def test_example_mentions_every_key():
    text = EXAMPLE.read_text()
    missing = [f"{section}.{key}" for section, key in _keys(Config)
               if section and f"[{section}.{key}]" not in text
               and not re.search(rf"(^|[\s#{{,]){re.escape(key)}\s*=", text, re.M)]
    sections = [name for name in Config.model_fields
                if f"[{name}]" not in text and f"[[{name}]]" not in text]
    assert not missing and not sections, (missing, sections)
