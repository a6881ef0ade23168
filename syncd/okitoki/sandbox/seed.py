"""Filling a sandbox: the ``POST /_sandbox/seed`` payload, the ``--token`` bootstrap company
and the ``--seed demo`` data set.

Seed payload (every key optional)::

    {"companies": [{"id": 1, "name": "Acme", "timezone": "Europe/Kyiv",
                    "users": [{"id": 1, "name": "Admin", "token": "..."}],
                    "dialers": [{"id": 101, "name": "New leads", "unique": true}],
                    "lists": [{"id": 7, "name": "Blacklist", "values": ["380..."]}],
                    "contacts": [{"name": "Ann", "phones": ["380..."], "email": "",
                                  "details": {}, "tags": [], "updated_at": "2026-03-29T00:30:00Z"}]}],
     "company_id": 1,          # company of the top-level lists below (default: the first one)
     "users": [...], "dialers": [...], "lists": [...], "contacts": [...]}
"""

from __future__ import annotations

from typing import Any

from . import dates
from .state import SandboxState
from .validation import normalise_phone, split_values

__all__ = ["apply_seed", "bootstrap", "DEMO"]

DEMO: dict[str, Any] = {
    "dialers": [{"id": 101, "name": "New leads", "unique": True},
                {"id": 102, "name": "Callbacks", "unique": False}],
    "lists": [{"id": 7, "name": "Blacklist", "values": []}],
    "contacts": [
        {"name": "Olena Kovalenko", "phones": ["380501112233"], "email": "olena@example.com",
         "details": {"city": "Kyiv"}, "tags": ["vip"]},
        {"name": "Taras Shevchuk", "phones": ["380672223344"], "details": {"city": "Lviv"}},
        {"name": "Iryna Bondar", "phones": ["380933334455", "380443334455"]},
    ],
}


def _company_part(state: SandboxState, company_id: int, part: dict[str, Any], out: dict[str, list[int]]) -> None:
    for u in part.get("users", []):
        out["users"].append(state.add_user(company_id, u.get("name", "User"), u.get("token"),
                                           u.get("id"), bool(u.get("operator", True))).id)
    for d in part.get("dialers", []):
        out["dialers"].append(state.add_dialer(company_id, d.get("name", "Dialer"), bool(d.get("unique", True)),
                                               d.get("id"), d.get("state", "enabled"),
                                               d.get("operator_ids", ())).id)
    for plist in part.get("lists", []):
        out["lists"].append(state.add_list(company_id, plist.get("name", "List"),
                                           split_values(plist.get("values", [])) or [], plist.get("id")).id)
    for c in part.get("contacts", []):
        changes = {"name": c.get("name", ""),
                   "phones": [normalise_phone(p) for p in split_values(c.get("phones", [])) or []],
                   "email": c.get("email", ""), "details": c.get("details") or {},
                   "tags": split_values(c.get("tags", [])) or []}
        when = dates.parse_instant(c["updated_at"]) if c.get("updated_at") is not None else None
        out["contacts"].append(state.upsert_contact(company_id, None, changes, updated_at=when,
                                                    id=c.get("id")).id)


def apply_seed(state: SandboxState, payload: dict[str, Any]) -> dict[str, list[int]]:
    """Create what ``payload`` describes; returns the ids created, by kind.
    Raises ``ValueError``/``KeyError`` for a bad payload (the admin route answers 400)."""
    out: dict[str, list[int]] = {k: [] for k in ("companies", "users", "dialers", "lists", "contacts")}
    with state.lock:
        for comp in payload.get("companies", []):
            tz = comp.get("timezone")
            if tz and not dates.is_zone(tz):
                raise ValueError(f"unknown time zone {tz!r}")
            company = state.add_company(comp.get("name", "Company"), tz, comp.get("id"))
            out["companies"].append(company.id)
            _company_part(state, company.id, comp, out)
        if any(payload.get(k) for k in ("users", "dialers", "lists", "contacts")):
            company_id = payload.get("company_id") or (out["companies"] or sorted(state.companies) or [None])[0]
            if company_id not in state.companies:
                raise ValueError("no company to seed into: add one under 'companies' or give company_id")
            _company_part(state, int(company_id), payload, out)
    return out


def bootstrap(state: SandboxState, token: str | None, demo: bool = False) -> None:
    """A fresh sandbox: company 1 (user 1 holds ``token``), plus the demo data when asked."""
    with state.lock:
        if state.companies:
            return
        if token or demo:
            company = state.add_company("Sandbox call center", None, 1)
            state.add_user(company.id, "API user", token, 1)
            if demo:
                apply_seed(state, {**DEMO, "company_id": company.id})
