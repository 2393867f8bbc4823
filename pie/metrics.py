"""Prometheus metrics: requests, jobs, dispatch, triggers, recovery; served at `/metrics`.

Under `pie serve` every worker process writes its samples to files in PROMETHEUS_MULTIPROC_DIR
(set by pie.server before the fork) and a scrape of any worker adds up all of them."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, g, request
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from pie.logs import route_label

METRICS_PATH = "/metrics"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# The metric objects live in a private registry: tests build many apps in one process, and a
# host application's default registry stays untouched.
LOCAL = CollectorRegistry()

HTTP_REQUESTS = Counter(
    "pie_http_requests",
    "HTTP requests answered, by method, URL rule and status",
    ["method", "route", "status"],
    registry=LOCAL,
)
HTTP_DURATION = Histogram(
    "pie_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, URL rule and status",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=LOCAL,
)
JOB_DISPATCHES = Counter(
    "pie_job_dispatches",
    "Dispatch attempts by job type, handler type and outcome (dispatched, failed, deferred)",
    ["job_type", "handler_type", "outcome"],
    registry=LOCAL,
)
JOBS_COMPLETED = Counter(
    "pie_jobs_completed",
    "Jobs that ended, by job type, status (success, failure) and handler type",
    ["job_type", "status", "handler_type"],
    registry=LOCAL,
)
JOB_ATTEMPTS_ENDED = Counter(
    "pie_job_attempts_ended",
    "Attempts PIE ended or retried, by job type and reason (Timeout, HeartbeatTimeout, "
    "Cancelled, retry)",
    ["job_type", "reason"],
    registry=LOCAL,
)
TRIGGER_FAN_OUT = Histogram(
    "pie_trigger_fan_out_jobs",
    "Jobs started by one fired event (one per active subscription), by event",
    ["event"],
    buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
    registry=LOCAL,
)
RECOVERY_PASSES = Counter(
    "pie_recovery_passes",
    "Recovery-loop passes, by result (ok, error)",
    ["result"],
    registry=LOCAL,
)
RECOVERY_JOBS = Counter(
    "pie_recovery_redispatched_jobs",
    "Jobs the recovery loop re-dispatched (left pending by a crash or a shutdown, or stalled)",
    registry=LOCAL,
)
RECOVERY_LAST_PASS = Gauge(
    "pie_recovery_last_pass_timestamp_seconds",
    "Unix time of the newest finished recovery pass in any process",
    multiprocess_mode="max",
    registry=LOCAL,
)
DEAD_PROCESSES = Counter(
    "pie_dead_processes",
    "Processes taken for dead (heartbeat older than PIE_PROCESS_TIMEOUT_SECONDS) and removed"
    " from the registry by a recovery loop",
    registry=LOCAL,
)
VOIDED_CLAIMS = Counter(
    "pie_voided_claims",
    "Claims of dead processes voided by a recovery loop, by job status (pending: dispatched"
    " again at once; started: run again or failed as Interrupted)",
    ["status"],
    registry=LOCAL,
)
WEBHOOK_DELIVERIES = Counter(
    "pie_webhook_deliveries",
    "Webhook delivery attempts by outcome: delivered (2xx), retry (failed, another attempt "
    "is scheduled), failed (failed, no attempt left, or 410), lost_claim",
    ["outcome"],
    registry=LOCAL,
)
WEBHOOKS_DISABLED = Counter(
    "pie_webhooks_disabled",
    "Webhook endpoints PIE disabled, by reason (410 Gone, or failing for "
    "PIE_WEBHOOK_DISABLE_AFTER_SECONDS)",
    ["reason"],
    registry=LOCAL,
)
SERVER_WORKERS = Gauge(
    "pie_server_worker_processes",
    "Live `pie serve` worker processes (each sets 1; a dead worker's share is dropped)",
    multiprocess_mode="livesum",
    registry=LOCAL,
)


def dispatched(job_type: str, handler_type: str, outcome: str) -> None:
    JOB_DISPATCHES.labels(job_type, handler_type, outcome).inc()


def completed(job_type: str, status: str, handler_type: str) -> None:
    JOBS_COMPLETED.labels(job_type, status, handler_type).inc()


def attempt_ended(job_type: str, reason: str) -> None:
    JOB_ATTEMPTS_ENDED.labels(job_type, reason).inc()


def fanned_out(event: str, jobs: int) -> None:
    TRIGGER_FAN_OUT.labels(event).observe(jobs)


def recovery_pass(redispatched: int, ok: bool = True) -> None:
    RECOVERY_PASSES.labels("ok" if ok else "error").inc()
    RECOVERY_JOBS.inc(redispatched)
    RECOVERY_LAST_PASS.set(time.time())


def webhook_delivery(outcome: str) -> None:
    WEBHOOK_DELIVERIES.labels(outcome).inc()


def webhook_disabled(reason: str) -> None:
    WEBHOOKS_DISABLED.labels(reason).inc()


def voided(pending: int, started: int, dead: bool) -> None:
    DEAD_PROCESSES.inc(int(dead))
    VOIDED_CLAIMS.labels("pending").inc(pending)
    VOIDED_CLAIMS.labels("started").inc(started)


def recovery_samples() -> list[Any]:
    """This deployment's recovery-loop samples (passes, re-dispatched jobs, the last pass, dead
    processes, voided claims), as a scrape of /metrics reports them, without the backlog."""
    registry = process_registry()
    names = ("pie_recovery", "pie_dead_processes", "pie_voided_claims")
    return [
        sample
        for family in registry.collect()
        if family.name.startswith(names)
        for sample in family.samples
        if not sample.name.endswith("_created")
    ]


def open_jobs() -> list[tuple[str, str, str, int]]:
    """(job type, status, handler type, count) of the jobs not yet ended: the queue depths."""
    from peewee import fn

    from pie.tables import Job

    columns = (Job.job_type, Job.status, Job.handler_type)
    query = Job.select(*columns, fn.COUNT(Job.job_id)).where(Job.status.in_(("pending", "started")))
    return list(query.group_by(*columns).order_by(*columns).tuples())


class OpenJobsCollector(Collector):
    """Pending and started jobs, counted in the database at scrape time: the backlog of the
    whole deployment, the same number whichever process answers."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from pie import db

        family = GaugeMetricFamily(
            "pie_jobs_open",
            "Jobs not yet ended (the whole database), by job type, status and handler type",
            labels=["job_type", "status", "handler_type"],
        )
        try:
            with db.connection():
                rows = open_jobs()
        except Exception:  # the database is down: report no backlog rather than fail the scrape
            return
        for job_type, status, handler_type, count in rows:
            family.add_metric([job_type, status, handler_type], count)
        yield family


class WebhookQueueCollector(Collector):
    """Webhook deliveries not yet delivered (the whole database), and the age of the oldest,
    counted at scrape time."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from pie import db
        from pie.services.deliveries import queue_stats

        try:
            with db.connection():
                depth, age = queue_stats()
        except Exception:  # the database is down (or not yet upgraded): report nothing
            return
        yield GaugeMetricFamily(
            "pie_webhook_queue_depth",
            "Webhook deliveries pending (due, waiting for a retry, or held by a paused or "
            "disabled endpoint) in the whole database",
            value=depth,
        )
        yield GaugeMetricFamily(
            "pie_webhook_oldest_pending_age_seconds",
            "Age of the oldest pending webhook delivery (0 when none)",
            value=age,
        )


class _Local(Collector):
    """This process's metrics (single-process mode)."""

    def collect(self) -> Iterator[Any]:
        yield from LOCAL.collect()


def exposition_registry() -> CollectorRegistry:
    """What a scrape reports: every process's samples in multiprocess mode (the metric objects
    must stay out of this registry there, or they would be reported twice), this process's
    otherwise; and the open-jobs and webhook-queue backlogs."""
    registry = process_registry()
    registry.register(OpenJobsCollector())
    registry.register(WebhookQueueCollector())
    return registry


def process_registry() -> CollectorRegistry:
    """Every process's samples in multiprocess mode, this process's otherwise."""
    registry = CollectorRegistry()
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_Local())
    return registry


def metrics_view() -> Response:
    """GET /metrics: the Prometheus text format (OpenMetrics when the scraper asks for it).
    Public, like /v2/health."""
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(exposition_registry()), content_type=content_type)


def _start_timer() -> None:
    g.pie_metrics_started = time.perf_counter()


def _observe(response: Response) -> Response:
    method = request.method
    if method not in HTTP_METHODS:  # bounded labels
        method = "other"
    labels = (method, route_label(), str(response.status_code))
    HTTP_REQUESTS.labels(*labels).inc()
    started = g.get("pie_metrics_started")
    if started is not None:
        HTTP_DURATION.labels(*labels).observe(time.perf_counter() - started)
    return response


def serve_standalone(port: int, host: str = "0.0.0.0") -> None:
    """Serve /metrics on its own port from a process with no HTTP API (`pie worker`)."""
    start_http_server(port, host, registry=exposition_registry())


def init_app(app: Flask) -> None:
    """Count and time every request; serve /metrics outside the OpenAPI document."""
    app.before_request(_start_timer)
    app.after_request(_observe)
    app.add_url_rule(METRICS_PATH, "metrics", metrics_view, methods=["GET"])
