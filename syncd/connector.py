"""The CRM connector protocol, its capability flags, and the entry-point registry.

A connector is a class registered under the entry-point group ``syncd.connectors``; the
``[crm] connector = "name"`` key picks it. The core builds it as::

    connector = cls(options, context)

where ``options`` is an instance of ``cls.Options`` (a pydantic model validating
``[crm.options]``; unknown keys are errors) and ``context`` a :class:`ConnectorContext`.
Connectors never build their own HTTP clients: they call ``context.remote(...)`` which returns
a :class:`syncd.http.RemoteSystem` wired to the shared rate limiter, daily budget, API journal,
retry policy and HTTP transport (tests inject an ``httpx.MockTransport`` there).

Semantics every connector must keep (the conformance suite in :mod:`syncd.testing` checks them):

* ``changed_contacts(after, limit)`` returns the contacts whose (server ``updated_at``, id) is
  strictly after ``after``, ascending by (updated_at, id), at most ``limit`` per page; walking
  pages until ``more`` is False returns every change exactly once, even across equal
  timestamps at page boundaries. ``Page.next`` resumes the walk after a restart.
* ``upsert_contacts`` and ``log_calls`` return one :class:`WriteResult` per input, in order; a
  failing record never sinks the others. ``log_calls`` is idempotent by ``Call.session_id``:
  logging the same call twice leaves one activity in the CRM.
* ``update_calls`` (only with ``capabilities.calls_update``) rewrites the activity of a call
  already logged with the call's current values; repeating it changes nothing more.
* Errors of the remote as a whole (auth, permission, throttling, outage) are raised as the
  taxonomy in :mod:`syncd.errors`, with messages that name the operation and hold no secret.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import timedelta
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal, Protocol, runtime_checkable

from pydantic import BaseModel

from .errors import ConfigError
from .http import RemoteSystem
from .model import Call, Contact, ContactWrite, Cursor, Page, Untracked, WriteResult

__all__ = [
    "CapableConnector",
    "Capabilities",
    "ConnectorContext",
    "CrmConnector",
    "ENTRY_POINT_GROUP",
    "ReportsUntracked",
    "VendorLimits",
    "available_connectors",
    "load_connector",
]

ENTRY_POINT_GROUP = "syncd.connectors"


@dataclass(frozen=True)
class Capabilities:
    """What a connector can do. The daemon checks these at ``syncd check`` against the config."""

    contacts_read: bool = True
    contacts_write: bool = True
    contacts_create: bool = True
    calls_write: bool = False
    calls_update: bool = False       # update_calls: an activity already logged can be changed
    do_not_call: bool = False        # the CRM has a place for a do-not-call flag
    read_batch_size: int = 100       # page size for changed_contacts
    write_batch_size: int = 50       # contacts per upsert_contacts call
    calls_batch_size: int = 50       # calls per log_calls call
    max_phones: int | None = None    # phones one contact can hold (None: no limit); a contact
    #                                  read back with only that many of the agreed numbers is
    #                                  full, not edited
    notes: tuple[str, ...] = ()      # caveats shown by `syncd check` (e.g. cost per poll)
    change_overlap: timedelta = timedelta(seconds=5)   # re-read window of the change walk
    #                                  (default of [crm] overlap): how late a change can
    #                                  become visible behind its updated_at
    deletes: Literal["flag", "verify_only"] = "verify_only"   # how deletes are seen: "flag" (the change walk returns
    #                                  deleted/archived records as Contact(deleted=True)) or
    #                                  "verify_only" (records just vanish: `syncd verify` finds them)
    contacts_delete: bool = False    # delete_contacts(ids) works (on_delete = "propagate")

    @classmethod
    def declared_by(cls, connector: type) -> Capabilities | None:
        """What a connector class declares before it connects (``syncd check`` offline);
        None when only an instance knows (it sets ``capabilities`` in its ``__init__``)."""
        # The one place the class is read: the protocol requires the attribute of instances.
        declared = getattr(connector, "capabilities", None)
        return declared if isinstance(declared, cls) else None


@dataclass
class ConnectorContext:
    """What the core gives a connector."""

    remote: Callable[..., RemoteSystem]   # remote(base_url=..., secrets=[...], **overrides)
    state_dir: Path                        # private 0700 directory (e.g. rotated OAuth tokens)
    field_names: tuple[str, ...] = ()      # CRM-side field names the config maps
    do_not_call_field: str | None = None   # CRM-side field of the do-not-call flag, if any
    default_region: str = "UA"             # [contacts] default_region: region of numbers
    #                                        written without a country code (ISO 3166)
    extra: dict[str, Any] = field(default_factory=dict)   # free for tests (e.g. "journal")


@dataclass(frozen=True)
class VendorLimits:
    """The vendor's documented limits a connector class may declare, used where ``[crm]``
    leaves the key unset. A connector declares them as optional class attributes::

        default_requests_per_minute: ClassVar[int]    # no pacing when absent
        default_burst: ClassVar[int]                  # 5 when absent
        default_daily_request_budget: ClassVar[int]   # unlimited when absent
        default_max_in_flight: ClassVar[int]          # 4 when absent
    """

    requests_per_minute: int | None = None
    burst: int = 5
    daily_request_budget: int | None = None
    max_in_flight: int = 4

    @classmethod
    def of(cls, connector: object) -> VendorLimits:
        """The limits ``connector`` (a class, or an instance of it) declares; the defaults
        above for the others."""
        # The one place the optional class attributes are read: a connector is a plain class
        # (no base class to inherit the defaults from).
        declared = {key: getattr(connector, f"default_{key}", None)
                    for key in ("requests_per_minute", "burst", "daily_request_budget",
                                "max_in_flight")}
        return cls(**{key: int(value) for key, value in declared.items() if value})


@runtime_checkable
class CrmConnector(Protocol):
    """The protocol a CRM connector implements (structural: no base class needed).

    The conformance suite checks ``isinstance(connector, CrmConnector)``: only the required
    members are here. The optional ones are in :class:`CapableConnector`,
    :class:`ReportsUntracked` and :class:`VendorLimits`.
    """

    name: ClassVar[str]
    Options: ClassVar[type[BaseModel]]
    capabilities: Capabilities

    def __init__(self, options: Any, context: ConnectorContext) -> None:
        """``options``: an instance of ``Options`` (the validated ``[crm.options]``)."""

    def health_check(self) -> None:
        """The cheapest authenticated call; raises a taxonomy error (401/403 explained)."""

    def changed_contacts(self, after: Cursor, limit: int) -> Page:
        """One page of contacts changed strictly after ``after`` (see module docstring)."""

    def fetch_contacts(self, ids: list[str]) -> list[Contact]:
        """The contacts with these ids; missing ids are simply absent from the result."""

    def find_by_phone(self, phone_e164: str) -> list[Contact]:
        """Contacts with exactly this number after normalisation (verify substring matches)."""

    def upsert_contacts(self, writes: list[ContactWrite]) -> list[WriteResult]:
        """Create (id None) or update contacts; one result per write, in order."""

    def log_calls(self, calls: list[Call]) -> list[WriteResult]:
        """Log calls as CRM activities, once per ``session_id``; result key = session_id."""

    # Optional, with a capability: see :class:`CapableConnector`.
    # Optional, for CRMs that send change events (``/events/crm``, :mod:`syncd.crm_events`):
    # def webhook_ids(self, request: WebhookRequest) -> list[str] | None:
    #     Check the vendor's authentication (raise WebhookRefused; WebhookOff while its secret
    #     is not configured) and name the contacts the event is about. Called first without
    #     the body (return None to get it), then with it. Ids are hints: they are read by id.
    # Optional, for CRMs that can hold records the change walk cannot see: see
    # :class:`ReportsUntracked`. Optional class attributes: see :class:`VendorLimits`.

    def close(self) -> None:
        """Release connections."""


class CapableConnector(CrmConnector, Protocol):
    """A connector as the engine calls it: :class:`CrmConnector` plus the methods its
    ``capabilities`` may declare. The engine calls each only when the capability says so,
    so a connector without that capability leaves the method out."""

    def delete_contacts(self, ids: list[str]) -> list[WriteResult]:
        """Only with ``capabilities.contacts_delete``: delete (or archive, as the CRM's own
        delete does) contacts; one result per id, in order, key = the id. An id already gone
        is ok (a retry must not fail)."""
        ...

    def update_calls(self, calls: list[Call], activity_ids: dict[str, str]) -> list[WriteResult]:
        """Only with ``capabilities.calls_update``: bring the activities of calls already
        logged up to date (recording link, outcome, talk time, duration, agent);
        ``activity_ids``: session_id → the id ``log_calls`` answered (absent: look it up by
        session_id). Idempotent; one result per call, in order, key = session_id."""
        ...


@runtime_checkable
class ReportsUntracked(Protocol):
    """Optional: a connector whose CRM can hold records the change walk cannot see (no change
    time, or one that is not a time) says how many, so the daemon can report them."""

    def untracked_contacts(self) -> Untracked:
        """The rows ``changed_contacts`` cannot return (a sample of the unreadable ones)."""
        ...


def _entry_points() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_connectors() -> list[str]:
    """Names of the installed connectors, sorted."""
    return sorted(_entry_points())


def load_connector(name: str) -> type[CrmConnector]:
    """The connector class registered as ``name``; ConfigError listing the installed ones."""
    eps = _entry_points()
    if name not in eps:
        installed = ", ".join(sorted(eps)) or "none"
        close = difflib.get_close_matches(name, list(eps), n=1)
        hint = f' (did you mean "{close[0]}"?)' if close else ""
        raise ConfigError(f'crm.connector: unknown connector "{name}"{hint}; installed: {installed}')
    cls: type[CrmConnector] = eps[name].load()
    return cls
