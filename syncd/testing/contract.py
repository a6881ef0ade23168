"""What a connector's tests hand the conformance suite: :class:`ConformanceCrm`.

A connector's test suite provides ONE pytest fixture, ``conformance_crm``, yielding an object
that satisfies this protocol: it builds configured connectors and changes the CRM *behind the
connector's back* (as a CRM user would). The suite (:mod:`syncd.testing.conformance`) only
calls the optional methods when the matching name is in ``abilities``; a test that needs an
ability the backend lacks is skipped with a reason naming it, never silently.

Subclassing :class:`ConformanceCrm` is optional (the protocol is structural), but doing so
inherits the defaults below for the optional attributes and methods.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ..connector import CrmConnector

__all__ = ["ConformanceCrm", "ABILITIES"]

#: Optional abilities a backend may declare in ``ConformanceCrm.abilities``.
ABILITIES: dict[str, str] = {
    "delete": "delete a contact behind the connector's back (delete_contact)",
    "equal_timestamps": "give several contacts one identical updated_at (force_equal_updated_at)",
    "count_activities": "count the call activities logged for a session_id (count_activities)",
    "activity_text": "everything the CRM shows of a session_id's call activity, as text (activity_text)",
    "throttle": "make the CRM throttle the connector (throttling context manager)",
    "auth_failure": "build a connector with wrong credentials (unauthorised_connector)",
    "invalid_value": "name field values the CRM refuses on create (invalid_fields)",
    "raw_phone_formats": "store phones exactly as given, e.g. '+380 (67) 123-45-67'",
    "unreadable_record": "store a contact the connector cannot read, e.g. bytes that are not "
                         "UTF-8 (make_unreadable)",
    "null_change_time": "give a contact no change time at all (set_change_time(id, None))",
    "bad_change_time": "give a contact a change time that is not a time (set_change_time(id, 'x'))",
    "time_spellings": "store change times spelt in several ways (respell_change_times)",
}


@runtime_checkable
class ConformanceCrm(Protocol):
    """A live CRM (real server, fake server or database) plus a connector configured for it.

    Required attributes
        ``text_field``: CRM-side name of a writable text field that round-trips any short
        ASCII string (e.g. ``"name"``); the connector must be configured with it in
        ``ConnectorContext.field_names``.
        ``missing_id``: an id in the connector's id format that names no contact.
        ``secrets``: every secret in the connectors' configuration (tokens, passwords,
        including the wrong ones of ``unauthorised_connector``); none may appear in a log
        record, an error message or a ``WriteResult.error``.

    Optional attributes (defaults when absent)
        ``abilities`` (``frozenset()``): names from :data:`ABILITIES`.
        ``max_phones`` (``2``): phones one contact can hold (the suite writes up to 3).
        ``settle_seconds`` (``0.0``): how long after a change before reads reflect it, and
        the resolution of the CRM's ``updated_at`` (the suite sleeps this long between a
        cursor and the changes that must come after it).
        ``do_not_call_field`` (``None``): the CRM-side do-not-call field the connector was
        configured with, if the backend has one.
        ``value_examples`` (``10``): generated batches of odd values the record-value test
        writes (a backend over a slow real server may ask for fewer).
    """

    text_field: str
    missing_id: str
    secrets: Sequence[str]

    def connector(self) -> CrmConnector:
        """A NEW connector instance, configured for this CRM (a restart = another call).

        The suite closes every connector it gets. Connectors that talk HTTP should be built
        with a context from :func:`syncd.testing.context.connector_context` (fast retries,
        a private rate limiter) so throttling tests take well under a second.
        """
        ...

    def create_contact(self, fields: Mapping[str, Any], phones: Sequence[str]) -> str:
        """Create a contact behind the connector's back; returns its id (as the connector
        gives ids). ``phones`` are stored as given (see ability ``raw_phone_formats``)."""
        ...

    def update_contact(self, contact_id: str, fields: Mapping[str, Any]) -> None:
        """Change fields behind the connector's back; the CRM's updated_at moves forward."""
        ...

    # -- optional: called only when the ability is declared ---------------------------------
    def delete_contact(self, contact_id: str) -> None:
        """Ability ``delete``."""
        raise NotImplementedError

    def force_equal_updated_at(self, contact_ids: Sequence[str]) -> None:
        """Ability ``equal_timestamps``: give these contacts ONE identical updated_at, later
        than every updated_at the CRM held before the call."""
        raise NotImplementedError

    def count_activities(self, session_id: str) -> int:
        """Ability ``count_activities``: how many call activities carry this session_id."""
        raise NotImplementedError

    def activity_text(self, session_id: str) -> str:
        """Ability ``activity_text``: the call activity of this session_id as the CRM shows
        it (all its fields, any format): the suite looks for values it wrote there."""
        raise NotImplementedError

    def throttling(self) -> contextlib.AbstractContextManager[None]:
        """Ability ``throttle``: while inside, the CRM throttles connectors (429 with a short
        Retry-After, Bitrix24's 503 QUERY_LIMIT_EXCEEDED, a connection limit...). The suite
        builds a NEW connector inside the block and expects :class:`syncd.errors.Throttled`."""
        raise NotImplementedError

    def unauthorised_connector(self) -> CrmConnector:
        """Ability ``auth_failure``: a connector whose credentials the CRM refuses; its
        ``health_check`` must raise :class:`syncd.errors.AuthenticationError`."""
        raise NotImplementedError

    def invalid_fields(self) -> Mapping[str, Any]:
        """Ability ``invalid_value``: fields (valid names) whose values the CRM refuses."""
        raise NotImplementedError

    def make_unreadable(self, contact_id: str) -> None:
        """Ability ``unreadable_record``: corrupt this contact so the connector cannot read it
        (its change time moves forward and stays readable)."""
        raise NotImplementedError

    def set_change_time(self, contact_id: str, value: Any) -> None:
        """Abilities ``null_change_time`` (value None) and ``bad_change_time`` (a value that
        is not a time): store this raw change time for the contact."""
        raise NotImplementedError

    def respell_change_times(self, contact_ids: Sequence[str]) -> None:
        """Ability ``time_spellings``: give these contacts new, distinct change times later
        than every one before, each spelt differently (zone suffixes, ``T``, no fraction)."""
        raise NotImplementedError


def option(crm: Any, name: str, default: Any) -> Any:
    """An optional attribute of a backend, with the protocol's default."""
    return getattr(crm, name, default)


def abilities(crm: Any) -> frozenset[str]:
    return frozenset(option(crm, "abilities", frozenset()))
