"""The world the demo plays while the daemon runs: agents call, CRM users edit.

Every action is something a real call center or CRM user does; each is recorded in a
:class:`DemoWorld` so the summary can say what happened.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from .testing.convergence import linked_pairs
from .testing.scenario import SqlCrm

__all__ = ["DemoWorld", "play"]


@dataclass
class DemoWorld:
    """What the scenario did, for the summary."""

    state_url: str
    calls_made: int = 0
    crm_edits: int = 0
    dnc_contact: int | None = None
    both_sides_contact: int | None = None
    errors: list[str] = field(default_factory=list)


def play(sb: Any, crm: SqlCrm, world: DemoWorld, stop: threading.Event, busy_for: float) -> None:
    """For ``busy_for`` seconds: dialer calls on open tasks, CRM edits, a do-not-call request,
    and one name edited on both sides. Errors are recorded, never raised (it runs in a thread)."""
    rnd = random.Random(11)
    started = time.monotonic()
    step = 0
    try:
        while not stop.is_set() and time.monotonic() - started < busy_for:
            step += 1
            _dial(sb, rnd, world)
            if step == 3:
                _crm_user_edits(crm, world)
            elif step == 4:
                _do_not_call(crm, world)
            elif step == 5:
                _edit_both_sides(sb, crm, world)
            stop.wait(1.5)
    except Exception as exc:  # noqa: BLE001 - reported in the summary; the checks then fail
        world.errors.append(f"scenario: {type(exc).__name__}: {exc}")


def _dial(sb: Any, rnd: random.Random, world: DemoWorld) -> None:
    open_tasks = [t for t in sb.state()["tasks"] if t["status"] == "pending"]
    for task in rnd.sample(open_tasks, min(len(open_tasks), 4)):
        outcome = rnd.choice(["answered", "answered", "no_answer", "busy"])
        sb.add_call(phone=task["phones"][0], direction="dialer", outcome=outcome,
                    duration=rnd.randint(5, 240) if outcome == "answered" else 0,
                    dialer_id=task["dialer_id"], task_id=task["id"], user_id=1)
        world.calls_made += 1
    if rnd.random() < 0.5 and open_tasks:  # an inbound call from a known customer
        sb.add_call(phone=rnd.choice(open_tasks)["phones"][0], direction="in",
                    outcome="answered", duration=rnd.randint(20, 300), user_id=1)
        world.calls_made += 1


def _crm_user_edits(crm: SqlCrm, world: DemoWorld) -> None:
    rows = [r for r in crm.all() if r["phone"]][10:18]
    for r in rows[:3]:
        crm.update(r["id"], name=r["name"] + " Jr.")
    for r in rows[3:6]:
        crm.update(r["id"], email=f"new.{r['id']}@example.org")
    for r in rows[6:]:
        crm.update(r["id"], status="qualified")   # a sale moves on: leaves the dialers
    world.crm_edits += len(rows)


def _do_not_call(crm: SqlCrm, world: DemoWorld) -> None:
    rows = [r for r in crm.all() if r["phone"] and r["status"] == "new" and not r["do_not_call"]]
    world.dnc_contact = rows[len(rows) // 2]["id"]
    crm.update(world.dnc_contact, do_not_call=True)
    world.crm_edits += 1


def _edit_both_sides(sb: Any, crm: SqlCrm, world: DemoWorld) -> None:
    """Rename one linked contact in the CRM and, a moment later, in Oki-Toki: newest wins."""
    from .store import open_store

    store = open_store(world.state_url)
    try:
        pairs = sorted(linked_pairs(store).items())
    finally:
        store.engine.dispose()
    if not pairs:
        world.errors.append("scenario: nothing was linked yet to edit on both sides")
        return
    crm_id, ok_id = pairs[len(pairs) // 3]
    # Both edits land between two polls: a real conflict. Oki-Toki keeps whole seconds and
    # the CRM microseconds, so the CRM edit made just after is the newer one and wins.
    sb.edit_contact(int(ok_id), name="Renamed In Oki-Toki")
    crm.update(int(crm_id), name="Renamed In CRM")
    world.both_sides_contact = int(crm_id)
    world.crm_edits += 1
