"""peewee tables: one BaseModel, portable JSON columns that work on SQLite and Postgres."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import peewee

from pie import jsonio
from pie.db import database


def utcnow() -> datetime:
    """Naive UTC, the form both backends store without conversion."""
    return datetime.now(UTC).replace(tzinfo=None)


class JSONField(peewee.TextField):
    """JSON stored as text: identical on SQLite and Postgres, no backend branches. Writing
    NaN or Infinity raises; reading one (stored by an earlier version) gives null."""

    def db_value(self, value: Any) -> str | None:
        return None if value is None else jsonio.dumps(value)

    def python_value(self, value: str | None) -> Any:
        return None if value is None else jsonio.loads_stored(value)


class BaseModel(peewee.Model):
    class Meta:
        database = database
        legacy_table_names = False


class RegisteredModel(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=128)
    name = peewee.TextField()
    description = peewee.TextField()
    handlers = JSONField()
    handler_contracts = JSONField(null=True)
    metadata = JSONField()
    status = peewee.CharField(max_length=16, default="pending")
    latest_version = peewee.CharField(max_length=128, null=True)
    # Largest integer-looking version string so far: the next auto-numbered version is this + 1.
    max_int_version = peewee.IntegerField(default=0)
    # {"training": {...}, "inference": {...}}: timeouts and retries of its jobs (issue 15).
    job_policy = JSONField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "models"
        indexes = ((("created_at", "id"), False),)


class ModelVersion(BaseModel):
    model = peewee.ForeignKeyField(RegisteredModel, backref="versions", on_delete="CASCADE")
    version = peewee.CharField(max_length=128)
    description = peewee.TextField(default="")
    metadata = JSONField()
    status = peewee.CharField(max_length=16, default="pending")
    handlers = JSONField()
    handler_contracts = JSONField(null=True)
    feature_schema = JSONField(null=True)
    # The model's job_policy, copied to each version (jobs read it with the version they
    # start on; a policy change rewrites it on every version, creating none).
    job_policy = JSONField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "model_versions"
        # Migration 6 adds (model_id, status, created_at, id) and (model_id, created_at, id).
        indexes = ((("model", "version"), True),)


REGISTRY_TABLES = [RegisteredModel, ModelVersion]


class Job(BaseModel):
    job_id = peewee.CharField(primary_key=True, max_length=36)
    job_type = peewee.CharField(max_length=16)
    model_id = peewee.CharField(max_length=128)  # not a foreign key: jobs outlive their model
    model_version = peewee.CharField(max_length=128)
    status = peewee.CharField(max_length=16, default="pending")
    input = JSONField()
    output = JSONField(null=True)
    error = JSONField(null=True)
    warnings = JSONField(default=list)
    assignment_id = peewee.CharField(max_length=36, null=True)
    client_id = peewee.CharField(max_length=128, null=True)
    domain_id = peewee.CharField(max_length=128, null=True)
    service_id = peewee.CharField(max_length=128, null=True)
    trigger = JSONField(null=True)
    handler_type = peewee.CharField(max_length=64)
    handler = JSONField()  # the handler object this job was dispatched with
    external_id = peewee.TextField(null=True)
    # The stored completion result, so a repeated callback answers the same thing.
    triggered_events = JSONField(null=True)
    # Dispatch claim: whoever sets claimed_until (conditionally) owns the dispatch until then.
    claimed_until = peewee.DateTimeField(null=True)
    # The process (`pie_processes.id`) that holds the claim or the in-process lease: when its
    # heartbeat lapses, the recovery loop voids the claim at once (migration 11).
    claimed_by = peewee.CharField(max_length=36, null=True)
    dispatch_attempts = peewee.IntegerField(default=0)
    created_at = peewee.DateTimeField(default=utcnow)
    started_at = peewee.DateTimeField(null=True)
    completed_at = peewee.DateTimeField(null=True)
    # Job control (issue 15): the policy for this job's type when it was created (None: the
    # settings' defaults), its attempt (from 1) and the past attempts' errors, a started
    # attempt's deadline and heartbeat, and `expires_at`: when the recovery loop ends the
    # attempt (the deadline, or the heartbeat timeout if sooner).
    policy = JSONField(null=True)
    attempt = peewee.IntegerField(default=1, constraints=[peewee.SQL("DEFAULT 1")])
    attempts = JSONField(null=True)
    deadline_at = peewee.DateTimeField(null=True)
    heartbeat_at = peewee.DateTimeField(null=True)
    progress = peewee.DoubleField(null=True)
    progress_message = peewee.TextField(null=True)
    expires_at = peewee.DateTimeField(null=True)
    # What `trigger` names, as columns GET /v2/jobs can search by index (migration 12, which
    # also adds the indexes that search uses); null on a job no subscription started. Last,
    # so a table created with them and one they were added to have the same column order.
    parent_job_id = peewee.CharField(max_length=36, null=True)
    subscription_id = peewee.CharField(max_length=36, null=True)

    class Meta:
        table_name = "jobs"
        indexes = (
            (("model_id", "model_version", "job_id"), False),
            (("status", "created_at"), False),
            (("status", "expires_at"), False),
        )


class JobCount(BaseModel):
    """How many jobs each (model, version, type, status, tenant) has: kept by database
    triggers on `jobs` (migration 5), so a list's total costs a few rows, not a scan.
    `client_key` is the job's client_id or "" (none). `shard` is 0 on SQLite; on Postgres it
    is the writing backend's pid, so no two transactions share a row (see pie/counts.py)."""

    model_id = peewee.CharField(max_length=128)
    model_version = peewee.CharField(max_length=128)
    job_type = peewee.CharField(max_length=16)
    status = peewee.CharField(max_length=16)
    client_key = peewee.CharField(max_length=128)
    shard = peewee.IntegerField()
    n = peewee.BigIntegerField()

    class Meta:
        table_name = "job_counts"
        primary_key = peewee.CompositeKey(
            "model_id", "model_version", "job_type", "status", "client_key", "shard"
        )


class ModelCount(BaseModel):
    """How many models exist, kept by triggers on `models` (sharded like JobCount)."""

    shard = peewee.IntegerField(primary_key=True)
    n = peewee.BigIntegerField()

    class Meta:
        table_name = "model_counts"


JOB_TABLES = [Job]


class Process(BaseModel):
    """A PIE process that claims jobs (a `pie serve` worker, `pie worker`, an app that
    dispatches): registered at its first claim or when its background work starts, it renews
    `heartbeat_at` every PIE_PROCESS_HEARTBEAT_SECONDS and deletes its row when it stops
    cleanly. A row older than PIE_PROCESS_TIMEOUT_SECONDS names a dead process, whose claims
    the recovery loop voids (pie/services/processes.py; migration 11)."""

    id = peewee.CharField(primary_key=True, max_length=36)
    hostname = peewee.CharField(max_length=255)
    pid = peewee.IntegerField()
    kind = peewee.CharField(max_length=16)  # serve, worker or app
    started_at = peewee.DateTimeField(default=utcnow)
    heartbeat_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "pie_processes"


PROCESS_TABLES = [Process]


TRIGGER_COLUMNS = ("parent_job_id", "subscription_id")  # what a job's `trigger` names
COUNT_TABLES = [JobCount, ModelCount]


class Subscription(BaseModel):
    id = peewee.CharField(primary_key=True, max_length=36)
    source_model_id = peewee.CharField(max_length=128)
    trigger_event = peewee.CharField(max_length=32)
    target_model_id = peewee.CharField(max_length=128)
    target_action = peewee.CharField(max_length=16)
    input_source = peewee.CharField(max_length=16)
    input = JSONField(null=True)
    label = peewee.TextField(null=True)
    status = peewee.CharField(max_length=16, default="active")
    warnings = JSONField(default=list)
    # The tenant a subscription belongs to (`subscribe: true` through an assignment), null for
    # a global one: only that tenant sees it, and its jobs run in its context (migration 7).
    client_id = peewee.CharField(max_length=128, null=True)
    domain_id = peewee.CharField(max_length=128, null=True)
    service_id = peewee.CharField(max_length=128, null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "event_subscriptions"
        indexes = (
            (("source_model_id", "trigger_event", "status"), False),
            (("target_model_id",), False),
        )


SUBSCRIPTION_TABLES = [Subscription]
TENANT_FIELDS = ("client_id", "domain_id", "service_id")


class TriggerBudget(BaseModel):
    """How many jobs the subscriptions of one owner (a client, or "" for the global ones)
    have started in the chain of one root event (PIE_MAX_TRIGGERED_JOBS), and how many they
    were refused. Written when the chain goes on past its root, or when the root starts a
    tenant's jobs or is refused any (see pie/services/chains.py; migration 9)."""

    chain_id = peewee.CharField(max_length=36)
    owner = peewee.CharField(max_length=128)
    jobs = peewee.BigIntegerField()
    refused = peewee.BigIntegerField(default=0)
    created_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "trigger_budgets"
        primary_key = peewee.CompositeKey("chain_id", "owner")


CHAIN_TABLES = [TriggerBudget]


class Client(BaseModel):
    client_id = peewee.CharField(primary_key=True, max_length=128)
    client_uuid = peewee.CharField(max_length=36, unique=True)
    name = peewee.TextField()
    status = peewee.CharField(max_length=16, default="active")
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "clients"


class Domain(BaseModel):
    client_id = peewee.CharField(max_length=128)
    domain_id = peewee.CharField(max_length=128)
    status = peewee.CharField(max_length=16, default="active")
    features = JSONField(default=list)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "domains"
        indexes = ((("client_id", "domain_id"), True),)


class Service(BaseModel):
    client_id = peewee.CharField(max_length=128)
    domain_id = peewee.CharField(max_length=128)
    service_id = peewee.CharField(max_length=128)
    status = peewee.CharField(max_length=16, default="available")
    departure_datetime = peewee.DateTimeField(null=True)
    provided_features = JSONField(default=dict)
    resolved_features = JSONField(default=dict)
    init_job_id = peewee.CharField(max_length=36, null=True)  # the job `status` follows
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "services"
        indexes = ((("client_id", "domain_id", "service_id"), True),)


class Assignment(BaseModel):
    assignment_id = peewee.CharField(primary_key=True, max_length=36)
    assignment_key = peewee.CharField(max_length=128)
    client_id = peewee.CharField(max_length=128)
    domain_id = peewee.CharField(max_length=128)
    service_id = peewee.CharField(max_length=128, null=True)
    # service_id or "" — a NOT NULL column so one unique index covers both scopes.
    scope = peewee.CharField(max_length=128, default="")
    model_id = peewee.CharField(max_length=128)
    model_version = peewee.CharField(max_length=128)
    status = peewee.CharField(max_length=16, default="active")
    role = peewee.TextField(null=True)
    settings = JSONField(default=dict)
    metadata = JSONField(default=dict)
    created_at = peewee.DateTimeField(default=utcnow)
    archived_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "assignments"
        indexes = (
            (("client_id", "domain_id", "scope", "assignment_key", "created_at"), False),
            (("model_id", "status"), False),
        )


TENANCY_TABLES = [Client, Domain, Service, Assignment]


class Webhook(BaseModel):
    """A webhook endpoint (issue 17): where PIE POSTs signed events. `client_id` is the
    tenant it belongs to (it receives only that client's events), null for a global one.
    Secrets are stored encrypted (pie.outbound.secretbox); during a rotation the previous
    one still signs until `previous_secret_expires_at`."""

    webhook_id = peewee.CharField(primary_key=True, max_length=36)
    url = peewee.TextField()
    events = JSONField()  # event types, or ["*"]
    description = peewee.TextField(default="")
    status = peewee.CharField(max_length=16, default="active")  # active, paused, disabled
    client_id = peewee.CharField(max_length=128, null=True)
    secret = peewee.TextField()
    previous_secret = peewee.TextField(null=True)
    previous_secret_expires_at = peewee.DateTimeField(null=True)
    # Since when every attempt has failed (null: the last one succeeded); past
    # PIE_WEBHOOK_DISABLE_AFTER_SECONDS the endpoint is disabled. `disabled_reason` says why.
    failing_since = peewee.DateTimeField(null=True)
    disabled_reason = peewee.TextField(null=True)
    created_at = peewee.DateTimeField(default=utcnow)
    updated_at = peewee.DateTimeField(default=utcnow)

    class Meta:
        table_name = "webhooks"
        indexes = ((("client_id", "created_at"), False),)


class WebhookDelivery(BaseModel):
    """One event for one endpoint: the outbox row, written in the transaction of the change
    that caused it, then the delivery log. `delivery_id` is the `webhook-id` of every attempt
    (receivers deduplicate on it); `body` is the exact JSON sent each time."""

    delivery_id = peewee.CharField(primary_key=True, max_length=36)
    webhook_id = peewee.CharField(max_length=36)
    event_type = peewee.CharField(max_length=64)
    body = peewee.TextField()
    status = peewee.CharField(max_length=16, default="pending")  # pending, delivered, failed
    attempts = peewee.IntegerField(default=0)
    next_attempt_at = peewee.DateTimeField(null=True)
    # The claim of the process sending it now (see pie/services/deliveries.py).
    claimed_until = peewee.DateTimeField(null=True)
    claimed_by = peewee.CharField(max_length=36, null=True)
    response_status = peewee.IntegerField(null=True)
    latency_ms = peewee.DoubleField(null=True)
    error = peewee.TextField(null=True)
    history = JSONField(default=list)  # the latest attempts: at, response_status, latency, error
    created_at = peewee.DateTimeField(default=utcnow)
    delivered_at = peewee.DateTimeField(null=True)

    class Meta:
        table_name = "webhook_deliveries"
        # Migration 13 adds the partial index of open deliveries by next_attempt_at.
        indexes = ((("webhook_id", "delivery_id"), False),)


WEBHOOK_TABLES = [Webhook, WebhookDelivery]
