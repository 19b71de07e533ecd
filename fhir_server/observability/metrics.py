"""Prometheus metrics (issue 17), served at `GET /metrics` to an operator's token (kind `admin` or
`platform`): requests, MLLP messages, ingests, store round trips, background job runs, outbox depth.

prometheus-client picks its storage when it is first imported: in memory, or, when
PROMETHEUS_MULTIPROC_DIR is set, files that every process of `serve --workers N` writes and a scrape
of any one of them sums. `serve` sets that variable (under the data dir) before it builds the app,
so this module imports prometheus-client only in `start`, never at import.

Every label value is bounded: interactions and resource types come from the route, MLLP message
types from a pattern (others are `other`), store commands from the names PyMongo sends.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pymongo
from fastapi import APIRouter
from pymongo import monitoring
from pymongo.errors import PyMongoError
from starlette.requests import Request
from starlette.responses import Response

from fhir_server.errors import FhirError

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
MULTIPROCESS_DIR = "prometheus"
PATH = "/metrics"
# Who may scrape: operators' tokens (`fhir-server token admin`), not clients of the record.
SCRAPERS = frozenset({"admin", "platform"})
MESSAGE_TYPE = re.compile(r"[A-Z][A-Z0-9]{2}\^[A-Z][A-Z0-9]{2}")
STORE_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0)
GROUP_BUCKETS = (2, 3, 4, 6, 8, 12, 16)
# How long a scrape waits for the outbox count before leaving the gauge as it was.
OUTBOX_COUNT_SECONDS = 1.0

router = APIRouter()


class Metrics:
    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

        # A `_created` series beside every counter doubles the scrape for a value nobody graphs.
        disable_created_metrics()
        self.requests = Counter("fhir_http_requests", "HTTP requests answered", ["interaction", "type", "status"])
        self.request_seconds = Histogram("fhir_http_request_duration_seconds", "Time to answer an HTTP request",
                                         ["interaction", "type"])
        self.mllp = Counter("fhir_mllp_messages", "HL7 v2 messages received over MLLP, by ACK code",
                            ["message_type", "ack"])
        self.ingests = Counter("fhir_ingest", "Documents and messages ingested, by channel and outcome",
                               ["channel", "outcome"])
        self.store_seconds = Histogram("fhir_store_command_duration_seconds", "Round trip of a store command",
                                       ["command", "outcome"], buckets=STORE_BUCKETS)
        # storage/group_commit.py: how many transactions each embedded-store commit carried, and the
        # transactions run again because another of their group failed.
        self.group_commit_size = Histogram("fhir_store_group_commit_size", "Transactions written by one "
                                           "store commit, when more than one", buckets=GROUP_BUCKETS)
        self.group_commit_reruns = Counter("fhir_store_group_commit_reruns", "Transactions run again after "
                                           "their group was aborted, by cause", ["cause"])
        # storage/gate.py: embedded-store transactions left open by a process that died in them, rolled back.
        self.abandoned_transactions = Counter("fhir_store_abandoned_transactions", "Embedded-store "
                                              "transactions left open by a process that ended in them, "
                                              "rolled back")
        self.jobs = Counter("fhir_job_runs", "Rounds of background jobs, by outcome", ["job", "outcome"])
        self.job_seconds = Histogram("fhir_job_run_duration_seconds", "Time a background job round took", ["job"])
        self.outbox = Gauge("fhir_outbox_pending_events", "Events committed and not yet dispatched",
                            multiprocess_mode="mostrecent")
        # The series of each request's and each store command's labels, found once: `labels()` took
        # 3 us per call, a few per request (issue 18). The label values are bounded, so is this.
        self._series: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        key = (metric, *values)
        child = self._series.get(key)
        if child is None:
            child = self._series[key] = metric.labels(*values)
        return child

    def request(self, interaction: str, resource_type: str, status: int, seconds: float) -> None:
        self._child(self.requests, interaction, resource_type, str(status)).inc()
        self._child(self.request_seconds, interaction, resource_type).observe(seconds)

    def store_command(self, command: str, outcome: str, seconds: float) -> None:
        self._child(self.store_seconds, command, outcome).observe(seconds)

    def mllp_message(self, message_type: str, ack: str) -> None:
        self.mllp.labels(message_type if MESSAGE_TYPE.fullmatch(message_type) else "other",
                         ack if ack in ("AA", "AE", "AR", "CA", "CE", "CR") else "other").inc()

    def ingest(self, channel: str, outcome: str) -> None:
        self.ingests.labels(channel, outcome).inc()

    def job(self, job: str, outcome: str, seconds: float) -> None:
        self.jobs.labels(job, outcome).inc()
        self.job_seconds.labels(job).observe(seconds)


_metrics: Metrics | None = None


def start() -> Metrics:
    """The process's metrics, made on first call (the app's creation)."""
    global _metrics
    if _metrics is None:
        _metrics = Metrics()
    return _metrics


def current() -> Metrics | None:
    """The metrics once `start` ran; None in commands that serve nothing."""
    return _metrics


def share_between_workers(data_dir: Path) -> None:
    """Before the app is built by `serve --workers N`: every worker writes its metrics to files
    under the data dir, emptied first (a previous run's processes are gone)."""
    directory = data_dir / MULTIPROCESS_DIR
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROCESS_VARIABLE] = str(directory)


class StoreTiming(monitoring.CommandListener):
    """Each store command's round trip, as PyMongo measured it."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if _metrics is not None:
            _metrics.store_command(event.command_name, "ok", event.duration_micros / 1e6)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        if _metrics is not None:
            _metrics.store_command(event.command_name, "failed", event.duration_micros / 1e6)


def _registry() -> Any:
    from prometheus_client import REGISTRY, CollectorRegistry, multiprocess

    if MULTIPROCESS_VARIABLE not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


@router.get(PATH, summary="Prometheus metrics (text exposition format)", responses={200: {"content": {"text/plain": {}}}})
async def scrape(request: Request) -> Response:
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    caller = request.state.caller
    if caller.kind not in SCRAPERS:
        raise FhirError(403, "forbidden", "metrics are for operators: a token of kind admin or platform")
    # Here, not at the top: the store's client imports this module for its StoreTiming listener.
    from fhir_server.storage.outbox import OutboxStore

    observed = start()
    try:
        with pymongo.timeout(OUTBOX_COUNT_SECONDS):
            observed.outbox.set(await OutboxStore(request.app.state.repository.database).depth())
    except PyMongoError:
        pass
    return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)
