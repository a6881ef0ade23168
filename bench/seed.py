"""Bulk data for the daemon benchmark (``bench/bench_sync.py``): people, and an already
linked world of N contacts written straight into the CRM, the state database and a sandbox
data file, in the format the engine itself writes after a sync (checked against a real sync
by :func:`compare_with_real`).

Numbers are unique valid Ukrainian mobiles ``+38050XXXXXXX`` (person ``i`` has ``i`` as its
seven digits), so up to 10,000,000 people. Times: the CRM keeps naive UTC with microseconds,
the sandbox unix seconds; the linked world's records were last changed spread evenly over
the 30 days before ``t0`` (so a cursor's overlap window re-reads only a handful).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Iterator

from syncd.demo_data import DemoContact

__all__ = ["person", "people", "seed_linked", "compare_with_real", "SPAN", "DIALERS"]

_FIRST = ["Olena", "Andrii", "Iryna", "Taras", "Nataliia", "Dmytro", "Oksana", "Bohdan",
          "Yuliia", "Maksym", "Svitlana", "Volodymyr", "Mariia", "Oleh", "Halyna", "Serhii"]
_LAST = ["Kovalenko", "Shevchenko", "Bondarenko", "Tkachenko", "Kravchenko", "Oliinyk",
         "Melnyk", "Polishchuk", "Lysenko", "Rudenko", "Savchenko", "Petrenko", "Moroz"]
SPAN = timedelta(days=30)
# status → (dialer id, rule name, priority, ttl seconds, region) as the demo config's rules say
DIALERS = {"new": (101, "new-leads", 1, 259200, "Europe/Kyiv"),
           "callback": (102, "callbacks", 2, 86400, None)}
_STATUSES = ["new", "new", "new", "callback", "contacted"]


def e164(i: int) -> str:
    return f"+38050{i:07d}"


def person(i: int) -> DemoContact:
    """Person ``i`` (1-based): a name, one valid number as a CRM user types it, an email and a
    status (60% new, 20% callback, 20% contacted)."""
    d = f"{i:07d}"
    name = f"{_FIRST[i % len(_FIRST)]} {_LAST[(i // 7) % len(_LAST)]}"
    return DemoContact(name=name, phone=f"+380 50 {d[:3]} {d[3:5]} {d[5:]}", phone2=None,
                       email=f"c{i}@example.com", country="UA", status=_STATUSES[i % len(_STATUSES)])


def people(n: int, start: int = 1) -> Iterator[DemoContact]:
    return (person(i) for i in range(start, start + n))


def _iso(moment: datetime) -> str:
    """How SQLAlchemy keeps a naive UTC datetime in SQLite."""
    return moment.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _crm_time(i: int, n: int, t0: datetime) -> datetime:
    return t0 - SPAN + SPAN * i / n


def seed_crm(path: Path, n: int, t0: datetime) -> None:
    """The SqlCrm contacts table with persons 1..n (ids 1..n), changed over the 30 days to t0."""
    from syncd.testing.scenario import SqlCrm

    crm = SqlCrm(f"sqlite:///{path}").create()
    crm.dispose()
    con = sqlite3.connect(path)
    with con:
        con.executemany(
            "INSERT INTO contacts (id, name, phone, phone2, email, status, do_not_call, updated_at)"
            " VALUES (?, ?, ?, NULL, ?, ?, 0, ?)",
            ((i, p.name, p.phone, p.email, p.status, _iso(_crm_time(i, n, t0)))
             for i, p in ((i, person(i)) for i in range(1, n + 1))))
    con.close()


def seed_state(path: Path, n: int, t0: datetime, okitoki_top: int) -> None:
    """link, link_phone (both sides), base, task and the cursors of a migrated state DB, as
    the engine leaves them once persons 1..n are created in Oki-Toki (contact id = link id =
    CRM id = i) and read back."""
    written = _iso(t0 - timedelta(minutes=5))
    con = sqlite3.connect(path)
    with con:
        def rows() -> Iterator[tuple[Any, ...]]:
            for i in range(1, n + 1):
                yield i, person(i)

        con.executemany("INSERT INTO link (id, entity, crm_id, okitoki_id, tombstone, hold, created_at)"
                        " VALUES (?, 'contact', ?, ?, 0, NULL, ?)",
                        ((i, str(i), str(i), written) for i in range(1, n + 1)))
        con.executemany("INSERT INTO link_phone (phone, link_id, side) VALUES (?, ?, ?)",
                        ((e164(i), i, side) for i in range(1, n + 1) for side in ("crm", "okitoki")))

        def base() -> Iterator[tuple[Any, ...]]:
            for i, p in rows():
                crm = {"name": p.name, "email": p.email, "status": p.status, "do_not_call": False,
                       "phones": [e164(i)]}
                oki = {"name": p.name, "email": p.email, "status": p.status, "phones": [e164(i)]}
                text = json.dumps(crm)
                yield i, text, text, json.dumps(oki), _iso(_crm_time(i, n, t0)), written
        con.executemany("INSERT INTO base (link_id, agreed, crm, okitoki, crm_updated_at,"
                        " okitoki_updated_at, crm_written_at, okitoki_written_at)"
                        " VALUES (?, ?, ?, ?, ?, NULL, NULL, ?)", base())
        con.executemany("INSERT INTO task (link_id, dialer_id, rule, task_id, phones, state,"
                        " generation, updated_at) VALUES (?, ?, ?, ?, ?, 'active', 1, ?)",
                        ((i, str(DIALERS[p.status][0]), DIALERS[p.status][1], str(i),
                          json.dumps([e164(i)]), written) for i, p in rows() if p.status in DIALERS))
        top = datetime.fromtimestamp(okitoki_top, UTC)
        boundary = [str(i) for i in range(1, n + 1) if _oki_time(i, n, t0) == okitoki_top]
        con.executemany("INSERT INTO cursor (stream, value, last_id, boundary_ids, updated_at)"
                        " VALUES (?, ?, ?, ?, ?)",
                        [("crm:contacts", _iso(_crm_time(n, n, t0)), str(n), "[]", written),
                         ("crm:contacts:caught-up", _iso(t0 - timedelta(minutes=1)), None, "[]", written),
                         ("okitoki:contacts", _iso(top), None, json.dumps(boundary), written),
                         ("okitoki:calls", _iso(t0 - timedelta(minutes=1)), None, "[]", written),
                         ("okitoki:calls:sweep", _iso(t0 - timedelta(minutes=1)), None, "[]", written)])
    con.close()


def _oki_time(i: int, n: int, t0: datetime) -> int:
    return int((_crm_time(i, n, t0) + timedelta(seconds=1)).timestamp())


def seed_sandbox_file(path: Path, n: int, t0: datetime, token: str) -> int:
    """A sandbox data file (``persist.snapshot`` format): company 1 with ``token``, dialers
    101/102, blacklist 7, contacts 1..n and one pending task per contact in a dialer (task id
    = contact id). Returns the newest contact ``updated_at`` (unix seconds)."""
    created = int((t0 - SPAN).timestamp())
    top = _oki_time(n, n, t0)
    with open(path, "w", encoding="utf-8") as out:
        out.write('{"version":1,"clock_offset":0.0,')
        out.write('"next_ids":' + json.dumps({"company": 2, "user": 2, "dialer": 103, "task": n + 1,
                                              "list": 8, "contact": n + 1, "call": 1000001,
                                              "import": 2}) + ",")
        out.write('"companies":[{"id":1,"name":"Bench","timezone":"Europe/Kyiv"}],')
        out.write('"users":[' + json.dumps({"id": 1, "company_id": 1, "name": "API user",
                                            "token": token, "operator": True}) + "],")
        out.write('"dialers":[{"id":101,"company_id":1,"name":"New","unique":true,"state":"enabled",'
                  '"operator_ids":[]},{"id":102,"company_id":1,"name":"Callbacks","unique":false,'
                  '"state":"enabled","operator_ids":[]}],')
        out.write('"lists":[{"id":7,"company_id":1,"name":"Blacklist","values":[]}],')
        out.write('"calls":[],"tasks":[')
        first = True
        for i in range(1, n + 1):
            p = person(i)
            if p.status not in DIALERS:
                continue
            dialer, _rule, priority, ttl, region = DIALERS[p.status]
            task = {"id": i, "company_id": 1, "dialer_id": dialer, "phones": [e164(i)],
                    "status": "pending", "import_id": 1, "priority": priority, "region": region,
                    "ttl": ttl, "details": {}, "created_at": int(t0.timestamp()) - 600}
            out.write(("" if first else ",") + json.dumps(task, separators=(",", ":")))
            first = False
        out.write('],"contacts":[')
        for i in range(1, n + 1):
            p = person(i)
            contact = {"id": i, "company_id": 1, "name": p.name, "phones": [e164(i)],
                       "email": p.email, "details": {"status": p.status}, "tags": [],
                       "created_at": created, "updated_at": _oki_time(i, n, t0), "deleted": False}
            out.write(("" if i == 1 else ",") + json.dumps(contact, ensure_ascii=False,
                                                           separators=(",", ":")))
        out.write("]}")
    return top


def seed_linked(folder: Path, n: int, t0: datetime, token: str) -> dict[str, Path]:
    """crm.db, state.db (migrated, then filled) and sandbox.json for n linked contacts."""
    from syncd.store import migrate

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"crm": folder / "crm.db", "state": folder / "state.db", "sandbox": folder / "sandbox.json"}
    seed_crm(paths["crm"], n, t0)
    top = seed_sandbox_file(paths["sandbox"], n, t0, token)
    migrate(f"sqlite:///{paths['state']}")
    seed_state(paths["state"], n, t0, top)
    return paths


# -- checking the seeded format against what a real sync wrote ---------------------------------
def _state_view(path: Path) -> dict[str, Any]:
    con = sqlite3.connect(path)
    try:
        links = {row[0]: row[1:] for row in con.execute(
            "SELECT id, crm_id, okitoki_id IS NOT NULL, tombstone, hold FROM link")}
        view: dict[str, Any] = {}
        for link_id, (crm_id, linked, tomb, hold) in links.items():
            view[crm_id] = {"link": (linked, tomb, hold), "phones": set(), "tasks": set()}
        for phone, link_id, side in con.execute("SELECT phone, link_id, side FROM link_phone"):
            view[links[link_id][0]]["phones"].add((phone, side))
        for link_id, agreed, crm, oki, cu, ou, cw, ow in con.execute("SELECT * FROM base"):
            view[links[link_id][0]]["base"] = (json.loads(agreed), json.loads(crm),
                                               json.loads(oki) if oki else None,
                                               cu is not None, ou is not None, cw is not None,
                                               ow is not None)
        for link_id, dialer, rule, task_id, phones, state, gen in con.execute(
                "SELECT link_id, dialer_id, rule, task_id, phones, state, generation FROM task"):
            view[links[link_id][0]]["tasks"].add((dialer, rule, task_id is not None, phones, state, gen))
        view["_cursors"] = sorted(r[0] for r in con.execute("SELECT stream FROM cursor"))
        return view
    finally:
        con.close()


def _sandbox_view(data: dict[str, Any]) -> dict[str, Any]:
    contacts = {tuple(c["phones"]): {k: v for k, v in c.items()
                                     if k in ("name", "email", "details", "tags", "deleted")}
                for c in data["contacts"]}
    tasks = sorted((t["dialer_id"], tuple(t["phones"]), t["status"], t["priority"], t["region"],
                    t["ttl"], json.dumps(t["details"])) for t in data["tasks"])
    return {"contacts": contacts, "tasks": tasks}


def compare_with_real(real: dict[str, Any], seeded: dict[str, Any]) -> list[str]:
    """Differences between a real sync's rows and the seeded ones (same people); [] = same.
    ``real``/``seeded``: {"state": Path, "sandbox": dict (a snapshot)}."""
    problems = []
    a, b = _state_view(real["state"]), _state_view(seeded["state"])
    if a["_cursors"] != b["_cursors"]:
        problems.append(f"cursor streams {a['_cursors']} != {b['_cursors']}")
    for key in sorted(set(a) | set(b) - {"_cursors"}):
        if key != "_cursors" and a.get(key) != b.get(key):
            problems.append(f"crm id {key}: real {a.get(key)} != seeded {b.get(key)}")
    sa_, sb_ = _sandbox_view(real["sandbox"]), _sandbox_view(seeded["sandbox"])
    if sa_["contacts"] != sb_["contacts"]:
        problems.append("sandbox contacts differ")
    if sa_["tasks"] != sb_["tasks"]:
        problems.append(f"sandbox tasks differ: {sa_['tasks'][:2]} vs {sb_['tasks'][:2]}")
    return problems[:10]
