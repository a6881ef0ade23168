"""Wiring a :class:`Syncer` from a configuration: store, budget, journal, both sides."""

from __future__ import annotations

import os
import socket
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, cast

from pydantic import BaseModel, ValidationError

from ..config import Config
from ..connector import CapableConnector, ConnectorContext, CrmConnector, VendorLimits, load_connector
from ..errors import ConfigError
from ..http import RemoteSystem
from ..store import StoreBudget, StoreJournal, open_store, sqlite_path
from ..store.accounting import drop_leases, lease_holders
from ..store import outbox as outbox_sql
from .context import Context
from .mapping import Mapping
from .syncer import Syncer

if TYPE_CHECKING:
    from ..okitoki.client import OkitokiClient

__all__ = ["build_syncer", "connector_options"]


def connector_options(cls: type[CrmConnector], options: dict[str, Any]) -> BaseModel:
    """``[crm.options]`` validated by the connector's own model; ConfigError with key paths."""
    try:
        return cls.Options.model_validate(options)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"])
            problems.append(f"crm.options.{path}: {err['msg']}")
        raise ConfigError(problems) from None


def _state_dir(config: Config, state_dir: str | Path | None) -> Path:
    if state_dir is not None:
        path = Path(state_dir)
    else:
        db = sqlite_path(config.daemon.state_url)
        path = (db.parent if db is not None else Path(os.environ.get("STATE_DIRECTORY", "."))) / "crm"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_local(holders: list[str], me: str) -> list[str]:
    host = socket.gethostname() + ":"
    dead = []
    for holder in holders:
        if holder == me or not holder.startswith(host):
            continue
        pid = holder[len(host):]
        if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
            dead.append(holder)
    return dead


def _abandon_dead_local_claims(ctx: Context) -> None:
    """After a crash on this host, the old process's claims and leases need not wait for
    their expiry. Only ``<this hostname>:<pid>`` holders whose process is gone are released;
    those of other hosts expire as usual (a host cannot see another host's processes)."""
    outbox_sql.abandon_claims(ctx.store, _dead_local(outbox_sql.claim_holders(ctx.store),
                                                      ctx.instance_id), now=ctx.now())
    drop_leases(ctx.store, _dead_local(lease_holders(ctx.store), ctx.instance_id))


def build_syncer(config: Config, *, okitoki_transport: Any = None, crm_transport: Any = None,
                 state_dir: str | Path | None = None, instance_id: str | None = None,
                 clock: Callable[[], datetime] | None = None, dry_run: bool = False,
                 crm: CrmConnector | None = None, okitoki: OkitokiClient | None = None) -> Syncer:
    """Open the state database (it must be migrated) and build both sides around it.

    Requests of both sides go through the persistent daily budget and the API journal of the
    state database. ``crm``/``okitoki`` replace the built sides (tests). ``dry_run``: every
    job plans against real data but writes nothing (see :meth:`Syncer.cycle`).
    """
    cls = load_connector(config.crm.connector) if crm is None else type(crm)
    store = open_store(config.daemon.state_url)
    kwargs: dict[str, Any] = {"clock": clock} if clock is not None else {}
    # [crm] keys left unset take the vendor's documented limits the connector declares
    vendor = VendorLimits.of(cls)
    crm_budget = config.crm.daily_request_budget or vendor.daily_request_budget
    crm_rate = config.crm.requests_per_minute or vendor.requests_per_minute
    crm_burst = vendor.burst
    crm_in_flight = config.crm.max_in_flight or vendor.max_in_flight
    budget = StoreBudget(store, {"okitoki": config.okitoki.daily_request_budget,
                                 "crm": crm_budget}, **kwargs)
    journal = StoreJournal(store)
    closers: list[Callable[[], None]] = []
    try:
        if okitoki is None:
            from ..okitoki.client import OkitokiClient
            okitoki = OkitokiClient.from_config(config.okitoki, budget=budget, journal=journal,
                                                transport=okitoki_transport)
            closers.append(okitoki.close)
        if crm is None:
            options = connector_options(cls, config.crm.options)

            def remote(**kw: Any) -> RemoteSystem:
                params: dict[str, Any] = dict(system="crm", timeout=config.crm.timeout.total_seconds(),
                                              requests_per_minute=crm_rate, burst=crm_burst,
                                              budget=budget, journal=journal, transport=crm_transport,
                                              max_connections=max(10, crm_in_flight))
                params.update(kw)
                return RemoteSystem(**params)

            mapping = Mapping(config)
            cctx = ConnectorContext(remote=remote, state_dir=_state_dir(config, state_dir),
                                    field_names=mapping.crm_field_names(),
                                    do_not_call_field=config.do_not_call.crm_field,
                                    default_region=config.contacts.default_region)
            crm = cls(options, cctx)
            closers.append(crm.close)
    except BaseException:
        for close in closers:
            close()
        store.close()
        raise
    # The engine calls a connector's optional methods only when its capabilities declare them.
    ctx = Context(config=config, store=store, crm=cast(CapableConnector, crm), okitoki=okitoki,
                  budget=budget,
                  instance_id=instance_id or config.daemon.instance_id
                  or f"{socket.gethostname()}:{os.getpid()}", **kwargs)
    _abandon_dead_local_claims(ctx)
    syncer = Syncer(ctx, closers=tuple(closers), flushers=(journal.flush, budget.release))
    syncer.api_journal = journal   # the daemon adds its /metrics counters as a listener
    if dry_run:
        store.start_dry_run()
        ctx.dry_run = True
    return syncer
