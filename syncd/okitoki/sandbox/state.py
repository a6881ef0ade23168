"""The sandbox's world: companies, users and tokens, dialers, tasks, lists, contacts, calls.

One :class:`SandboxState` is shared by the HTTP handlers, the webhook dispatcher and the
persistence thread, so every method takes the state's lock. API-facing methods take the
caller's :class:`~.entities.Company` and raise the 401 of :func:`~.problems.unauthorized` for
an object of another company: a token never sees another company's objects.

Times are unix seconds from :meth:`SandboxState.now`, the wall clock plus an offset tests can
move (``POST /_sandbox/clock``).
"""

from __future__ import annotations

import bisect
import dataclasses
import threading
import time
from collections import defaultdict
from typing import Any, Callable, Iterable

from .entities import (TASK_DELETED, TASK_DONE, TASK_PENDING, Call, Company, Contact, Dialer,
                       PhoneList, Task, User)
from .problems import invalid, unauthorized
from .settings import SandboxSettings
from .validation import TaskInput, phone_key

__all__ = ["SandboxState", "Event"]

Event = tuple[str, int, dict[str, Any]]  # (event type, company id, variables)
_KINDS = ("company", "user", "dialer", "task", "list", "contact", "call", "import")


class SandboxState:
    def __init__(self, settings: SandboxSettings | None = None) -> None:
        self.settings = settings or SandboxSettings()
        self.lock = threading.RLock()
        self.listeners: list[Callable[[Event], None]] = []  # events: webhooks
        self.on_change: Callable[[], None] | None = None    # persistence
        self.clock_offset = 0.0
        self.clear()

    # -- housekeeping -----------------------------------------------------------------------
    def clear(self) -> None:
        with self.lock:
            self.companies: dict[int, Company] = {}
            self.users: dict[int, User] = {}
            self.tokens: dict[str, int] = {}
            self.dialers: dict[int, Dialer] = {}
            self.tasks: dict[int, Task] = {}
            self.lists: dict[int, PhoneList] = {}
            self.contacts: dict[int, Contact] = {}
            self.calls: dict[int, Call] = {}
            self.next_ids: dict[str, int] = {k: 1 for k in _KINDS}
            self.next_ids["call"] = 1_000_001
            self._pending: dict[int, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
            self._list_sets: dict[int, set[str]] = {}
            self._contact_version = 0
            self._export_cache: dict[int, tuple[int, list[tuple[int, int]]]] = {}
            self.changed()

    def now(self) -> float:
        return time.time() + self.clock_offset

    def changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    def emit(self, event: str, company_id: int, variables: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            listener((event, company_id, variables))

    def new_id(self, kind: str, wanted: int | None = None) -> int:
        if wanted is not None:
            self.next_ids[kind] = max(self.next_ids[kind], int(wanted) + 1)
            return int(wanted)
        value = self.next_ids[kind]
        self.next_ids[kind] = value + 1
        return value

    # -- companies and users ----------------------------------------------------------------
    def add_company(self, name: str, timezone: str | None = None, id: int | None = None) -> Company:
        with self.lock:
            company = Company(self.new_id("company", id), name, timezone or self.settings.timezone)
            self.companies[company.id] = company
            self.changed()
            return company

    def add_user(self, company_id: int, name: str, token: str | None = None,
                 id: int | None = None, operator: bool = True) -> User:
        with self.lock:
            if company_id not in self.companies:
                raise KeyError(f"no company {company_id}")
            if token and token in self.tokens:
                raise ValueError("that token already belongs to a user")
            user = User(self.new_id("user", id), company_id, name, token, operator)
            self.users[user.id] = user
            if token:
                self.tokens[token] = user.id
            self.changed()
            return user

    def authenticate(self, token: Any) -> tuple[User, Company]:
        """The user and company of ``token``; 401 when missing or unknown."""
        if not token or not isinstance(token, str):
            raise unauthorized("api_token is missing")
        with self.lock:
            user_id = self.tokens.get(token)
            if user_id is None:
                raise unauthorized()
            user = self.users[user_id]
            return user, self.companies[user.company_id]

    def _own(self, table: dict[int, Any], key: Any, company: Company, what: str) -> Any:
        obj = table.get(key) if isinstance(key, int) else None
        if obj is None or obj.company_id != company.id:
            raise unauthorized(f"{what} {key}")
        return obj

    # -- dialers and tasks ------------------------------------------------------------------
    def add_dialer(self, company_id: int, name: str, unique: bool = True, id: int | None = None,
                   state: str = "enabled", operator_ids: Iterable[int] = ()) -> Dialer:
        with self.lock:
            dialer = Dialer(self.new_id("dialer", id), company_id, name, bool(unique), state,
                            list(operator_ids))
            self.dialers[dialer.id] = dialer
            self.changed()
            return dialer

    def create_tasks(self, company: Company, inputs: list[TaskInput], *,
                     import_id: int | None = None, prefix: Callable[[int], str] = lambda i: "") -> list[int]:
        """Create all tasks or none. A phone already pending in a dialer with uniqueness on
        (or twice in this batch) is refused with a 422 unless the task has ``force_create``."""
        with self.lock:
            errors: dict[str, list[str]] = {}
            claimed: dict[tuple[int, str], int] = {}
            for i, spec in enumerate(inputs):
                draft = spec.task
                dialer = self._own(self.dialers, draft.dialer_id, company, "dialer")
                if draft.user_id is not None:
                    self._own(self.users, draft.user_id, company, "user")
                if draft.contact_id is not None:
                    self._own(self.contacts, draft.contact_id, company, "contact")
                if not dialer.unique or spec.force_create:
                    continue
                pending = self._pending[dialer.id]
                for phone in draft.phones:
                    key = (dialer.id, phone_key(phone))
                    existing = next(iter(pending.get(key[1], ())), None)
                    if existing is not None or key in claimed:
                        where = f"task {existing}" if existing is not None else f"task #{claimed[key]} of this request"
                        errors.setdefault(prefix(i) + "phones", []).append(
                            f"{phone} is already in dialer {dialer.id} ({where}); "
                            "send force_create=1 to add it anyway")
                    claimed[key] = i
            if errors:
                raise invalid(errors)
            now = int(self.now())
            ids = []
            for spec in inputs:
                task = dataclasses.replace(
                    spec.task, id=self.new_id("task"), company_id=company.id,
                    import_id=spec.task.import_id or import_id, created_at=now)
                self.tasks[task.id] = task
                self._index_task(task)
                ids.append(task.id)
            self.changed()
            return ids

    def _index_task(self, task: Task) -> None:
        if task.status == TASK_PENDING:
            for phone in task.phones:
                self._pending[task.dialer_id][phone_key(phone)].add(task.id)

    def _unindex_task(self, task: Task) -> None:
        pending = self._pending.get(task.dialer_id, {})
        for phone in task.phones:
            ids = pending.get(phone_key(phone))
            if ids is not None:
                ids.discard(task.id)
                if not ids:
                    del pending[phone_key(phone)]

    def delete_tasks(self, company: Company, dialer_id: int, task_id: int | None,
                     phones: list[str] | None) -> int:
        """Delete pending tasks of the dialer by id or by phone; returns how many (0 when
        already gone, so a retried delete is harmless)."""
        with self.lock:
            dialer = self._own(self.dialers, dialer_id, company, "dialer")
            if task_id is not None:
                task = self.tasks.get(task_id)
                if task is not None and task.company_id != company.id:
                    raise unauthorized(f"task {task_id}")
                targets = [task] if task is not None and task.dialer_id == dialer.id else []
            else:
                pending = self._pending.get(dialer.id, {})
                ids = set().union(*(pending.get(phone_key(p), set()) for p in phones or []))
                targets = [self.tasks[i] for i in sorted(ids)]
            deleted = 0
            for task in targets:
                if task.status == TASK_PENDING:
                    self._unindex_task(task)
                    task.status = TASK_DELETED
                    task.finished_at = int(self.now())
                    deleted += 1
            if deleted:
                self.changed()
            return deleted

    def finish_task(self, task: Task, session_id: int | None, result: str) -> None:
        """A dialer call happened for ``task``: it is done and no longer blocks its phones."""
        with self.lock:
            if task.status != TASK_PENDING:
                return
            self._unindex_task(task)
            task.status, task.finished_at, task.session_id = TASK_DONE, int(self.now()), session_id
            self.changed()
        self.emit("task_finished", task.company_id, {
            "task_id": task.id, "dialer_id": task.dialer_id, "session_id": session_id,
            "contact_id": task.contact_id, "phone": task.phones[0] if task.phones else "",
            "result": result})

    def dialer_stat(self, company: Company, dialer_id: int | None) -> dict[str, Any]:
        with self.lock:
            dialers = ([self._own(self.dialers, dialer_id, company, "dialer")] if dialer_id
                       else [d for d in self.dialers.values() if d.company_id == company.id])
            out = {}
            for d in dialers:
                busy = any(self._pending.get(d.id, {}).values())
                status = ("working", "работает", "working") if busy else ("no_phones", "ожидание задач", "waiting for tasks")
                operators = [self.users[u] for u in d.operator_ids if u in self.users] or [
                    u for u in self.users.values() if u.company_id == company.id and u.operator]
                out[str(d.id)] = {
                    "id": d.id, "name": d.name, "status_id": status[0], "status_ru": status[1],
                    "status_eng": status[2], "state": d.state,
                    "operators": [{"id": u.id, "name": u.name, "status_id": "offline",
                                   "status_ru": "не в сети", "status_eng": "offline", "skill": 1}
                                  for u in operators]}
            return out

    # -- lists ------------------------------------------------------------------------------
    def add_list(self, company_id: int, name: str, values: Iterable[str] = (),
                 id: int | None = None) -> PhoneList:
        with self.lock:
            plist = PhoneList(self.new_id("list", id), company_id, name, [])
            self.lists[plist.id] = plist
            self._list_sets[plist.id] = set()
            self._list_add(plist, values)
            self.changed()
            return plist

    def _list_add(self, plist: PhoneList, values: Iterable[str]) -> int:
        known = self._list_sets.setdefault(plist.id, set(plist.values))
        added = 0
        for value in values:
            if value not in known:
                known.add(value)
                plist.values.append(value)
                added += 1
        return added

    def list_add(self, company: Company, list_id: int, values: list[str]) -> int:
        with self.lock:
            added = self._list_add(self._own(self.lists, list_id, company, "list"), values)
            if added:
                self.changed()
            return added

    def list_check(self, company: Company, list_id: int, value: str) -> bool:
        with self.lock:
            self._own(self.lists, list_id, company, "list")
            # numbers compare as the dialer compares them: "+380..." and "380..." are one number
            key = phone_key(value)
            return value in self._list_sets[list_id] or any(phone_key(v) == key for v in self._list_sets[list_id])

    def list_remove(self, company: Company, list_id: int, values: list[str]) -> int:
        with self.lock:
            plist = self._own(self.lists, list_id, company, "list")
            gone = set(values) & self._list_sets[list_id]
            if gone:
                self._list_sets[list_id] -= gone
                plist.values = [v for v in plist.values if v not in gone]
                self.changed()
            return len(gone)

    # -- contacts ---------------------------------------------------------------------------
    def upsert_contact(self, company_id: int, contact_id: int | None, changes: dict[str, Any],
                       *, updated_at: int | None = None, id: int | None = None) -> Contact:
        """Create (no ``contact_id``) or update: only the keys in ``changes`` change, and
        ``details`` is merged by key (a key set to None is removed). ``updated_at`` is now
        unless given."""
        with self.lock:
            if contact_id is None:
                now = int(self.now())
                contact = Contact(self.new_id("contact", id), company_id, created_at=now)
                self.contacts[contact.id] = contact
            else:
                contact = self.contacts[contact_id]
            for key, value in changes.items():
                if key == "details":
                    merged = dict(contact.details)
                    for k, v in value.items():
                        if v is None:
                            merged.pop(k, None)
                        else:
                            merged[k] = v
                    contact.details = merged
                else:
                    setattr(contact, key, value)
            contact.updated_at = int(self.now()) if updated_at is None else int(updated_at)
            self._contact_version += 1
            self.changed()
            return contact

    def own_contact(self, company: Company, contact_id: int) -> Contact:
        with self.lock:
            contact = self._own(self.contacts, contact_id, company, "contact")
            if contact.deleted:
                raise unauthorized(f"contact {contact_id}")
            return contact

    def delete_contact(self, contact_id: int) -> Contact:
        """Admin: delete a contact (a tombstone the export shows with ``deleted: true``)."""
        with self.lock:
            contact = self.contacts[contact_id]
            contact.deleted = True
            contact.updated_at = int(self.now())
            self._contact_version += 1
            self.changed()
            return contact

    def export_contacts(self, company: Company, start: int | None, end: int | None,
                        page: int, per_page: int) -> tuple[list[Contact], int, int]:
        """Contacts with ``start <= updated_at <= end`` ordered by (updated_at, id): the
        requested page, the number of pages (at least 1) and the total."""
        with self.lock:
            cached = self._export_cache.get(company.id)
            if cached is None or cached[0] != self._contact_version:
                keys = sorted((c.updated_at, c.id) for c in self.contacts.values()
                              if c.company_id == company.id)
                cached = self._export_cache[company.id] = (self._contact_version, keys)
            keys = cached[1]
            lo = 0 if start is None else bisect.bisect_left(keys, (start, -1))
            hi = len(keys) if end is None else bisect.bisect_right(keys, (end, float("inf")))
            total = max(0, hi - lo)
            first = lo + (page - 1) * per_page
            chosen = keys[first:min(hi, first + per_page)] if first < hi else []
            pages = max(1, -(-total // per_page))
            return [self.contacts[i] for _, i in chosen], pages, total

    # -- calls ------------------------------------------------------------------------------
    def insert_call(self, call: Call) -> Call:
        with self.lock:
            self.calls[call.session_id] = call
            self.changed()
        return call

    def settle(self, call: Call, now: float) -> bool:
        """Apply the call's one late update when its time has come; True if it changed."""
        if call.late_fields is not None and call.late_at is not None and now >= call.late_at:
            for key, value in call.late_fields.items():
                setattr(call, key, value)
            call.late_fields = call.late_at = None
            self.changed()
            return True
        return False

    def visible_calls(self, company: Company, start: int | None, end: int | None) -> list[Call]:
        """Calls of ``company`` already visible, started within [start, end], by (stime, id)."""
        with self.lock:
            now = self.now()
            out = []
            for call in self.calls.values():
                if call.company_id != company.id or call.visible_at > now:
                    continue
                if (start is not None and call.stime < start) or (end is not None and call.stime > end):
                    continue
                self.settle(call, now)
                out.append(call)
            out.sort(key=lambda c: (c.stime, c.session_id))
            return out

    def own_call(self, company: Company, session_id: int) -> Call:
        """A visible call of ``company``; 401 for one not (yet) in its call log."""
        with self.lock:
            call = self._own(self.calls, session_id, company, "call")
            now = self.now()
            if call.visible_at > now:
                raise unauthorized(f"call {session_id}")
            self.settle(call, now)
            return call

    def rebuild_indexes(self) -> None:
        """Recompute the derived lookups (tokens, pending phones, list sets) after a restore."""
        with self.lock:
            self.tokens = {u.token: u.id for u in self.users.values() if u.token}
            self._pending = defaultdict(lambda: defaultdict(set))
            for task in self.tasks.values():
                self._index_task(task)
            self._list_sets = {p.id: set(p.values) for p in self.lists.values()}
            self._contact_version += 1
