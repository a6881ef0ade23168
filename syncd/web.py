"""The optional HTTP listener (``daemon.http_listen``): health, metrics, Oki-Toki events.

* ``GET /healthz`` → 200 while jobs make progress and no stream is stuck (see
  :mod:`syncd.health`), 503 otherwise; the JSON body has a one-line summary and ``stuck``:
  each stuck stream with the time it last advanced and why (last error or ``deferred: ...``).
* ``GET /metrics`` → Prometheus text: job runs by result, errors, outbox depth by lane, API
  requests by system (``syncd_api_requests_total`` from :meth:`Metrics.observe_api`, a
  journal hook for :class:`syncd.http.RemoteSystem`), and ``syncd_drift_records{kind}``
  from the last ``syncd verify`` report in the state database.
* ``/events/crm`` → CRM webhooks as hints (:mod:`syncd.crm_events`): the connector checks the
  vendor's authentication and names the records; the daemon reads them by id through the API.
* ``syncd_latency_seconds{flow}``: a histogram of change → effect (:mod:`syncd.engine.latency`).
* ``/events/okitoki`` → the receiver for Oki-Toki event webhooks (:mod:`syncd.webhooks`:
  bounded bodies, limits, never a 5xx). Accepts GET query parameters, form POST and JSON
  bodies; the shared ``okitoki.webhook_token`` must come as ``token`` (parameter or body
  field) or an ``Authorization: Bearer`` header, else 401. A call event (``event`` empty or
  starting with ``call``, with a ``session_id``) only *hints* the daemon to fetch that call
  through the API now; nothing in it is trusted.
  Parameter template to paste into Oki-Toki's event integration:
  ``event=call_finished&session_id={session_id}&phone={ani}&token=<webhook_token>``.

Served by uvicorn in a background thread; no signal handlers of its own.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import structlog
import uvicorn
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .crm_events import CrmEventReceiver
from .engine.latency import BUCKETS as LATENCY_BUCKETS
from .webhooks import EventReceiver

if TYPE_CHECKING:
    from .daemon import Daemon
    from .engine.seam import DaemonSyncer

__all__ = ["Metrics", "build_app", "WebServer"]

log = structlog.get_logger("syncd.web")
# the *_created series only add noise to a daemon's few counters (prometheus_client leaves
# this one function unannotated)
disable_created_metrics()  # type: ignore[no-untyped-call]


class Metrics:
    """Prometheus metrics of one daemon (its own registry, so tests can build several).

    Gauges are read at scrape time from ``syncer.gauges()`` (the state database's outbox
    depth, API use today, holds, drift: only what the gauges need, a scrape does not run the
    whole status report); without a syncer there are none.
    """

    def __init__(self, syncer: DaemonSyncer | None = None) -> None:
        self.syncer = syncer
        self.registry = CollectorRegistry()
        self.runs = Counter("syncd_job_runs", "Job runs by result (ok, deferred, failed, fatal)",
                            ["job", "result"], registry=self.registry)
        self.errors = Counter("syncd_job_errors", "Record-level errors reported by jobs",
                              ["job"], registry=self.registry)
        self.api = Counter("syncd_api_requests", "HTTP requests sent to remote systems since start",
                           ["system", "operation", "status"], registry=self.registry)
        self.events = Counter("syncd_webhook_events", "Oki-Toki webhook events received",
                              ["result"], registry=self.registry)
        self.crm_events = Counter("syncd_crm_webhook_events", "CRM webhook events (/events/crm) by "
                                  "result; hint and duplicate count record ids", ["result"],
                                  registry=self.registry)
        self.latency = Histogram("syncd_latency_seconds", "From a change at its source (its own time "
                                 "where the source gives one) to its effect settled on the other side",
                                 ["flow"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.registry.register(_SyncerCollector(self))

    def observe_latency(self, flow: str, seconds: float) -> None:
        """Engine hook (``ctx.latency_listener``): one change's effect settled."""
        self.latency.labels(flow=flow).observe(seconds)

    def observe_run(self, job: str, result: str, errors: int = 0) -> None:
        self.runs.labels(job=job, result=result).inc()
        if errors:
            self.errors.labels(job=job).inc(errors)

    def observe_api(self, entry: Any) -> None:
        """Journal hook: count one :class:`syncd.model.JournalEntry`."""
        status = str(entry.status) if entry.status is not None else "none"
        self.api.labels(system=entry.system, operation=entry.operation, status=status).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _SyncerCollector:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Any:
        syncer = self.metrics.syncer
        try:
            stored = syncer.gauges() if syncer is not None else {}
        except Exception:  # noqa: BLE001 - a scrape must not fail the daemon
            stored = {}
        for gauge, name, label, text in (
            ("outbox_depth", "syncd_outbox_depth", "lane", "Outbox rows not yet done, by lane"),
            ("api_requests_today", "syncd_api_requests_today", "system",
             "Requests spent today (UTC) per remote system"),
            ("drift_records", "syncd_drift_records", "kind",
             "Records in drift by kind, as the last syncd verify found them"),
            ("held_operations", "syncd_held_operations", "kind",
             "Operations the flood guard holds until released or dropped (syncd holds)"),
            ("api_budget_today", "syncd_api_budget_today", "system",
             "The daily request budget in force per remote system"),
            ("api_spend_today", "syncd_api_spend_today", "system",
             "What today's Oki-Toki requests cost (requests x [okitoki] price_per_request)"),
            ("in_flight_limit", "syncd_in_flight_limit", "system",
             "Requests the push lets run at once per remote system now (at most max_in_flight; "
             "fewer while syncd's CPU is the bottleneck)"),
        ):
            values = stored.get(gauge)
            if values is None:
                continue
            family = GaugeMetricFamily(name, text, labels=[label])
            for key, value in sorted(values.items()):
                family.add_metric([str(key)], float(value))
            yield family
        operations = stored.get("api_operations_today")
        if operations is not None:
            family = GaugeMetricFamily("syncd_api_operation_requests_today",
                                       "Requests today (UTC) per system, operation and status, from "
                                       "the API journal (every instance)", labels=["system", "operation", "status"])
            for (system, operation, status), n in sorted(operations.items()):
                family.add_metric([system, operation, status], float(n))
            yield family


def build_app(daemon: Daemon, metrics: Metrics) -> Starlette:
    """The ASGI app of ``daemon``: its progress and stuck streams, and the hints events give it."""
    expected = daemon.config.okitoki.webhook_token

    async def healthz(_request: Request) -> JSONResponse:
        now = daemon.clock()
        stuck = daemon.stuck_streams(now)
        ok = daemon.progress.healthy(now, daemon.health_window()) and not stuck
        body = {"status": "ok" if ok else "stalled",
                "summary": daemon.progress.summary(now),
                "stuck": [{"stream": j["stream"], "reason": j["reason"],
                           "last_advanced": j["advanced_at"].isoformat() if j["advanced_at"] else None}
                          for j in stuck]}
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics_endpoint(_request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)

    events = EventReceiver(expected, daemon.hint_call, metrics,
                           hints_per_minute=daemon.config.okitoki.webhook_hints_per_minute)

    crm = CrmEventReceiver(daemon.syncer.crm, daemon.hint_contacts, metrics,
                           hints_per_minute=daemon.config.crm.webhook_hints_per_minute)

    return Starlette(routes=[
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
        Route("/events/okitoki", events.handle, methods=["GET", "POST"]),
        Route("/events/crm", crm.handle, methods=["GET", "POST"]),
    ])


class WebServer:
    """uvicorn serving :func:`build_app` on ``listen`` (``HOST:PORT``; port 0 picks one)."""

    def __init__(self, daemon: Daemon, listen: str, metrics: Metrics) -> None:
        host, _, port = listen.rpartition(":")
        self.config = uvicorn.Config(build_app(daemon, metrics), host=host.strip("[]"),
                                     port=int(port), log_config=None, lifespan="off",
                                     access_log=False)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="syncd-web", daemon=True)

    @property
    def port(self) -> int:
        port: int = self.server.servers[0].sockets[0].getsockname()[1]
        return port

    def start(self, timeout: float = 10.0) -> None:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"the HTTP listener could not start on "
                              f"{self.config.host}:{self.config.port}")
            time.sleep(0.02)
        log.info("http_listening", host=self.config.host, port=self.port)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=5)
