"""The outbox's vocabulary: what a handler answers for each row it was given.

A handler (:data:`Handler`) gets the claimed rows of one (target, operation) and returns, per
row id, a :data:`RowResult`:

* :class:`Done`: the remote holds the write; its ``effect`` is recorded in the transaction
  that marks the row done (:mod:`.effects`);
* :class:`Later`: not an error; the row waits (for its contact's link, for an earlier task
  generation to go) and is tried again at ``at`` without counting an attempt;
* an exception: the row failed; :func:`.outbox.classify` decides retry, dead letter or stop.

A connector's batch write answers one :class:`~syncd.model.WriteResult` per record;
:func:`write_error` is the one place that turns a failed one into the exception the outbox
understands (``write_error(res, ...) or Done(...)`` is a row's result).

The push gets its handler table (:data:`Handlers`) from its caller, so this module, the
handlers and the push depend on each other only one way: handlers and push → results.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeAlias

from ..errors import InvalidRecord, TransientError
from ..model import WriteResult
from .context import Context

if TYPE_CHECKING:
    from .effects import Effect

__all__ = ["Done", "Later", "RowResult", "Handler", "Handlers", "Grouped", "write_error"]


@dataclass
class Done:
    """The row's write is done. ``effect``: an ``effects.*`` object (applied in bulk with its
    kind) or a callable(conn), run when the row settles; ``note`` says why nothing was sent."""

    effect: Effect | None = None
    note: str = ""


@dataclass
class Later:
    """Not an error: the row waits (e.g. for its contact's link) and is tried again at ``at``."""

    at: datetime
    reason: str


RowResult: TypeAlias = Done | Later | BaseException
# A handler: (context, claimed rows of one (target, operation)) → row id → result. A row it
# leaves out (shutdown, an earlier row's system error) is released untouched.
Handler: TypeAlias = Callable[[Context, list[Any]], dict[int, RowResult]]
Handlers: TypeAlias = Mapping[tuple[str, str], Handler]


class Grouped:
    """A handler whose pieces share one look-up for their whole group.

    When the push splits a group over several workers (:func:`.inflight.run_group`),
    ``prepare(ctx, rows)`` runs once on the whole group first and returns the handler every
    piece runs (one request for all of them, where each piece would otherwise make its own or
    the group would have to stay in one piece). Called directly it is ``run``, which looks up
    for itself."""

    def __init__(self, run: Handler, prepare: Callable[[Context, list[Any]], Handler]) -> None:
        self.run, self.prepare = run, prepare

    def __call__(self, ctx: Context, rows: list[Any]) -> dict[int, RowResult]:
        return self.run(ctx, rows)


def write_error(result: WriteResult | None, *, system: str, operation: str, refused: str,
                record_id: str | None = None) -> Exception | None:
    """None when the record's write succeeded; else the error its row fails with.

    No answer for the record, or a refusal the connector calls retriable, is a
    :class:`~syncd.errors.TransientError` (the outbox retries with backoff); any other refusal
    is an :class:`~syncd.errors.InvalidRecord` "``refused``: <the connector's reason>" (a dead
    letter with that reason).
    """
    if result is None:
        return TransientError("no result for this record", system=system, operation=operation)
    if result.ok:
        return None
    if result.retriable:
        return TransientError(result.error or "refused", system=system, operation=operation)
    return InvalidRecord(f"{refused}: {result.error}", record_id=record_id)

