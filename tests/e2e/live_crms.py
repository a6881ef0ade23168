"""Live CRMs as the conformance suite (and the daemon e2e) see them.

:class:`LiveTryton` and :class:`LiveBottleCrm` satisfy :class:`syncd.testing.contract.ConformanceCrm`:
they build configured connectors and change the CRM *behind the connector's back* through
the CRM's own REST API (as a user would), or through its database where the API cannot
(equal ``updated_at`` values).
"""

from __future__ import annotations

import base64
import itertools
import json
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from connectors.bottlecrm import BottleCrmConnector, BottleCrmOptions, split_name
from connectors.tryton import SESSION_TAG, TrytonConnector, TrytonOptions
from servers.bottlecrm import PG, BottleCrmServer
from servers.tryton import TrytonServer
from syncd.testing.context import connector_context

__all__ = ["LiveTryton", "LiveBottleCrm"]

_dirs = itertools.count()


def _b64(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode()


@dataclass
class LiveTryton:
    """A running Tryton plus connectors for it (ConformanceCrm)."""

    server: TrytonServer
    state_root: Path
    text_field: str = "name"
    missing_id: str = "987654321"
    abilities: frozenset[str] = frozenset({"delete", "equal_timestamps", "count_activities", "activity_text",
                                           "auth_failure", "raw_phone_formats"})
    max_phones: int = 5
    settle_seconds: float = 0.01
    value_examples: int = 4        # a real server: fewer generated batches (plus the 1 MB ones)
    do_not_call_field: str | None = None
    field_names: tuple[str, ...] = ("name", "email")
    wrong_key: str = "0123456789abcdef-not-a-key"

    def __post_init__(self) -> None:
        self.http = httpx.Client(
            base_url=f"{self.server.base_url}/{self.server.database}/rest/model/",
            headers={"Authorization": f"Bearer {self.server.api_key}"}, timeout=30)

    @property
    def secrets(self) -> list[str]:
        return [self.server.api_key, self.wrong_key]

    def crm_section(self) -> dict[str, Any]:
        """The ``[crm]`` table of a syncd configuration for this server."""
        return {"connector": "tryton", "options": dict(self.server.options)}

    def options(self, **overrides: Any) -> TrytonOptions:
        return TrytonOptions(**{**self.server.options, **overrides})

    def connector(self, **context: Any) -> TrytonConnector:
        """A new connector (its own state dir); ``context`` overrides connector_context()."""
        context.setdefault("field_names", self.field_names)
        ctx = connector_context(self.state_root / "tryton", **context)
        return TrytonConnector(self.options(), ctx)

    def unauthorised_connector(self) -> TrytonConnector:
        ctx = connector_context(self.state_root / f"tryton-{next(_dirs)}",
                                field_names=self.field_names)
        return TrytonConnector(self.options(api_key=self.wrong_key), ctx)

    # -- behind the connector's back ---------------------------------------------------
    def _ok(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            raise AssertionError(f"Tryton {response.request.method} {response.request.url.path}: "
                                 f"{response.status_code} {response.text[:300]}")
        return response

    def create_contact(self, fields: Mapping[str, Any], phones: Sequence[str]) -> str:
        body = {k: v for k, v in fields.items() if k != "email"}
        mechanisms = [{"type": "phone", "value": p} for p in phones]
        if fields.get("email"):
            mechanisms.append({"type": "email", "value": fields["email"]})
        if mechanisms:
            body["contact_mechanisms"] = [["create", mechanisms]]
        return str(self._ok(self.http.post("party.party", json=body)).json()["id"])

    def update_contact(self, contact_id: str, fields: Mapping[str, Any]) -> None:
        body = {k: v for k, v in fields.items() if k != "email"}
        self._ok(self.http.put(f"party.party/{int(contact_id)}", json=body))

    def delete_contact(self, contact_id: str) -> None:
        self._ok(self.http.delete(f"party.party/{int(contact_id)}"))

    def contact(self, contact_id: str) -> dict[str, Any]:
        """The party with its contact mechanisms (type, value) as Tryton holds them."""
        return self._ok(self.http.get(
            f"party.party/{int(contact_id)}",
            params=[("f", "name"), ("f", "contact_mechanisms.type"),
                    ("f", "contact_mechanisms.value")])).json()

    def force_equal_updated_at(self, contact_ids: Sequence[str]) -> None:
        db = self.server.workdir / "data" / f"{self.server.database}.sqlite"
        with sqlite3.connect(db, timeout=30) as conn:
            (latest,) = conn.execute("SELECT MAX(COALESCE(write_date, create_date)) "
                                     "FROM party_party").fetchone()
            stamp = max(datetime.fromisoformat(latest).replace(tzinfo=UTC),
                        datetime.now(UTC)) + timedelta(milliseconds=5)
            text = stamp.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
            conn.executemany("UPDATE party_party SET write_date = ? WHERE id = ?",
                             [(text, int(i)) for i in contact_ids])

    def count_activities(self, session_id: str) -> int:
        domain = [["message", "ilike", f"%{SESSION_TAG}{session_id}"]]
        rows = self._ok(self.http.get("ir.note", params={"d": _b64(domain)})).json()
        return len(rows)

    def activity_text(self, session_id: str) -> str:
        domain = [["message", "ilike", f"%{SESSION_TAG}{session_id}"]]
        return repr(self._ok(self.http.get("ir.note", params={"d": _b64(domain), "f": "message"})).json())

    def close(self) -> None:
        self.http.close()


@dataclass
class LiveBottleCrm:
    """A running BottleCRM plus connectors for it (ConformanceCrm)."""

    server: BottleCrmServer
    state_root: Path
    text_field: str = "name"      # virtual: first_name + last_name
    missing_id: str = "00000000-0000-4000-8000-000000000000"
    abilities: frozenset[str] = frozenset({"delete", "equal_timestamps", "count_activities", "activity_text",
                                           "auth_failure", "invalid_value",
                                           "raw_phone_formats"})
    max_phones: int = 1
    value_examples: int = 4        # a real server: fewer generated batches (plus the 1 MB ones)
    # The change scan leaves changes younger than its horizon (settle 1 s, plus the whole
    # seconds of the Date header) for the next poll.
    settle_seconds: float = 2.05
    do_not_call_field: str | None = "do_not_call"
    field_names: tuple[str, ...] = ("name", "first_name", "last_name", "email", "do_not_call")
    wrong_token: str = "bcrm_pat_this-token-does-not-exist-0000000000"
    _headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.http = httpx.Client(base_url=f"{self.server.base_url}/api/",
                                 headers={"Authorization": f"Bearer {self.server.token}"},
                                 timeout=30)

    @property
    def secrets(self) -> list[str]:
        return [self.server.token, self.wrong_token]

    def crm_section(self) -> dict[str, Any]:
        """The ``[crm]`` table of a syncd configuration for this server."""
        return {"connector": "bottlecrm", "options": dict(self.server.options)}

    def options(self, **overrides: Any) -> BottleCrmOptions:
        return BottleCrmOptions(**{**self.server.options, **overrides})

    def connector(self, **context: Any) -> BottleCrmConnector:
        context.setdefault("field_names", self.field_names)
        context.setdefault("do_not_call_field", self.do_not_call_field)
        # One state dir for every connector: a restarted daemon keeps its state directory.
        ctx = connector_context(self.state_root / "bottlecrm", **context)
        return BottleCrmConnector(self.options(), ctx)

    def unauthorised_connector(self) -> BottleCrmConnector:
        ctx = connector_context(self.state_root / f"bottlecrm-{next(_dirs)}",
                                field_names=self.field_names)
        return BottleCrmConnector(self.options(token=self.wrong_token), ctx)

    def invalid_fields(self) -> Mapping[str, Any]:
        return {"email": "this is not an e-mail address"}

    def _ok(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            raise AssertionError(f"BottleCRM {response.request.method} {response.request.url.path}: "
                                 f"{response.status_code} {response.text[:300]}")
        return response

    def create_contact(self, fields: Mapping[str, Any], phones: Sequence[str]) -> str:
        assert len(phones) <= 1, "BottleCRM holds one phone per contact"
        body = {"first_name": "e2e", "last_name": "contact", **self._plain(fields)}
        if phones:
            body["phone"] = phones[0]
        return str(self._ok(self.http.post("contacts/", json=body)).json()["id"])

    def update_contact(self, contact_id: str, fields: Mapping[str, Any]) -> None:
        self._ok(self.http.patch(f"contacts/{contact_id}/", json=self._plain(fields)))

    @staticmethod
    def _plain(fields: Mapping[str, Any]) -> dict[str, Any]:
        """BottleCRM's own fields for ``fields`` (the virtual ``name`` split in two)."""
        out = {k: v for k, v in fields.items() if k != "name"}
        if "name" in fields:
            out.update(split_name(fields["name"]))
        return out

    def delete_contact(self, contact_id: str) -> None:
        self._ok(self.http.delete(f"contacts/{contact_id}/"))

    def contact(self, contact_id: str) -> dict[str, Any]:
        body = self._ok(self.http.get(f"contacts/{contact_id}/")).json()
        return body.get("contact_obj", body)

    def _sql(self, query: str, params: Sequence[Any] = ()) -> list[tuple]:
        import psycopg

        with psycopg.connect(dbname=self.server.database, autocommit=True, **PG) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []

    def force_equal_updated_at(self, contact_ids: Sequence[str]) -> None:
        (latest,) = self._sql("SELECT MAX(updated_at) FROM contacts")[0]
        stamp = max(latest or datetime.now(UTC), datetime.now(UTC)) + timedelta(milliseconds=5)
        self._sql("UPDATE contacts SET updated_at = %s WHERE id = ANY(%s::uuid[])",
                  (stamp, list(contact_ids)))

    def count_activities(self, session_id: str) -> int:
        rows = self._sql("SELECT count(*) FROM interaction WHERE subject LIKE %s",
                         (f"%[syncd-session {session_id}]",))
        return int(rows[0][0])

    def activity_text(self, session_id: str) -> str:
        return repr(self._sql("SELECT subject, body, outcome, duration_seconds FROM interaction "
                              "WHERE subject LIKE %s", (f"%[syncd-session {session_id}]",)))

    def close(self) -> None:
        self.http.close()
