"""The webhook outbox (issue 17): an event is one row per endpoint that wants it, written by
the service call that makes the change, in its transaction — the change and its events
commit together or not at all. Delivery happens later, from any process's deliverer
(pie/services/deliverer.py), never on the request thread.

Event types and whose they are: a tenant's endpoint receives the events of its client's jobs,
services and subscriptions; a global endpoint receives every event, models' and versions'
(which belong to no client) included."""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from datetime import UTC
from typing import Any

from pie import jsonio
from pie.db import database
from pie.ids import uuid7
from pie.tables import Webhook, WebhookDelivery, utcnow

EVENT_TYPES = (
    "job.started",
    "job.succeeded",
    "job.failed",
    "version.status_changed",
    "model.created",
    "model.updated",
    "model.deleted",
    "subscription.fired",
    "subscription.stale",
    "service.status_changed",
)
TEST_EVENT = "webhook.test"
BATCH = 200  # rows per INSERT
RECEIVING = ("active", "paused")
# How long a process trusts what it read of the endpoints (one made, changed or deleted by
# another process is seen within this; by this process at once). Without it every change
# would pay one more read, webhooks or not.
ENDPOINT_CACHE_SECONDS = 5.0  # a paused endpoint's deliveries wait; a disabled one gets none

# Deliverers of this process to wake once an event commits (each also polls on its own).
_waiting: weakref.WeakSet[threading.Event] = weakref.WeakSet()


def wake_on_commit(event: threading.Event) -> None:
    """Have `event` set whenever this process commits an event."""
    _waiting.add(event)


def wake() -> None:
    for event in list(_waiting):
        event.set()


def receiving() -> list[tuple[str, str | None, list[str]]]:
    """(webhook_id, client_id, events) of the endpoints that take events: read at most every
    ENDPOINT_CACHE_SECONDS per process (kept on the database object, so each app has its
    own), and at once after this process changed an endpoint (`forget`)."""
    holder, now = database.obj, time.monotonic()
    cached = getattr(holder, "_pie_webhooks", None)
    if cached is None or cached[0] <= now:
        query = Webhook.select(Webhook.webhook_id, Webhook.client_id, Webhook.events).where(
            Webhook.status.in_(RECEIVING)
        )
        # A database not yet upgraded to webhooks (migration 13: a rolling upgrade, whose
        # `pie db upgrade` comes after the new code starts) has no endpoints yet.
        present = database.table_exists(Webhook._meta.table_name)
        cached = (now + ENDPOINT_CACHE_SECONDS, list(query.tuples()) if present else [])
        holder._pie_webhooks = cached
    return cached[1]


def forget() -> None:
    """Read the endpoints again at the next event (this process changed one)."""
    if database.obj is not None:
        database.obj._pie_webhooks = None


def endpoints_for(event_type: str, client_id: str | None) -> list[str]:
    """The endpoints that receive an event of this type and client (None: of no client)."""
    return [
        webhook_id
        for webhook_id, owner, events in receiving()
        if (owner is None or owner == client_id) and ("*" in events or event_type in events)
    ]


def has_receivers(event_type: str) -> bool:
    """Whether any endpoint, of any client, takes this event type: events whose data costs
    a read are skipped without one."""
    return any("*" in events or event_type in events for _, _, events in receiving())


def envelope(event_type: str, data: dict[str, Any], now: Any = None) -> str:
    """The body every endpoint gets: `{"type", "timestamp", "data"}`, as JSON text."""
    now = now or utcnow()
    stamp = now.replace(tzinfo=UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
    return jsonio.dumps({"type": event_type, "timestamp": stamp, "data": data})


def record_test(webhook_id: str) -> str:
    """A `webhook.test` delivery for one endpoint (whatever events it takes); its id."""
    delivery_id, now = uuid7(), utcnow()
    data = {"webhook_id": webhook_id, "message": "a test event sent through the API"}
    WebhookDelivery.insert(
        delivery_id=delivery_id,
        webhook_id=webhook_id,
        event_type=TEST_EVENT,
        body=envelope(TEST_EVENT, data, now),
        next_attempt_at=now,
        history=[],
        created_at=now,
    ).execute()
    return delivery_id


Data = Callable[[], dict[str, Any]]


def emit(event_type: str, client_id: str | None, data: Data) -> int:
    """Write the event for every endpoint that wants it, in the caller's transaction (call it
    inside one); `data()` (the resource as the API shows it, plus what changed) is built only
    when some endpoint wants the event. How many deliveries were written."""
    return emit_each(event_type, [(client_id, data)])


def emit_each(event_type: str, events: list[tuple[str | None, Data]]) -> int:
    """Several events of one type (a fan-out's), reading the endpoints once per client."""
    targets: dict[str | None, list[str]] = {}
    rows: list[dict[str, Any]] = []
    now = utcnow()
    for client_id, data in events:
        if client_id not in targets:
            targets[client_id] = endpoints_for(event_type, client_id)
        if targets[client_id]:
            body = envelope(event_type, data(), now)
            rows += [_row(webhook_id, event_type, body, now) for webhook_id in targets[client_id]]
    for start in range(0, len(rows), BATCH):
        WebhookDelivery.insert_many(rows[start : start + BATCH]).execute()
    if rows:
        database.after_commit(wake)
    return len(rows)


def _row(webhook_id: str, event_type: str, body: str, now: Any) -> dict[str, Any]:
    return {
        "delivery_id": uuid7(),
        "webhook_id": webhook_id,
        "event_type": event_type,
        "body": body,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "history": [],
        "created_at": now,
    }


# --- what each event says: the resource as the API shows it, plus what changed --------

_schemas: dict[str, Any] = {}


def dumped(name: str, row: Any) -> dict[str, Any]:
    """`row` as the API shows it, through one shared instance of pie.schemas' `name` schema
    (building one copies every field; dumping keeps no state on it)."""
    schema = _schemas.get(name)
    if schema is None:
        from pie.schemas import jobs, models, subscriptions, tenancy, versions

        found = {
            "job": jobs.JobSchema,
            "version": versions.ModelVersionSchema,
            "model": models.ModelSchema,
            "subscription": subscriptions.SubscriptionSchema,
            "service": tenancy.ServiceSchema,
        }
        schema = _schemas[name] = found[name]()
    return schema.dump(row)


def job_event(job: Any) -> tuple[str | None, Data]:
    return job.client_id, lambda: dumped("job", job)


def job_ended(job: Any) -> None:
    """job.succeeded or job.failed (failures PIE made included: timeouts, cancellations)."""
    emit("job.succeeded" if job.status == "success" else "job.failed", *job_event(job))


def version_status_changed(version: Any, previous: str) -> None:
    emit(
        "version.status_changed",
        None,
        lambda: {**dumped("version", version), "previous_status": previous},
    )


def model_changed(event_type: str, model: Any) -> None:
    emit(event_type, None, lambda: dumped("model", model))


def service_status_changed(service: Any, previous: str) -> None:
    emit(
        "service.status_changed",
        service.client_id,
        lambda: {**dumped("service", service), "previous_status": previous},
    )


def subscriptions_event(event_type: str, items: list[tuple[Any, str | None, dict]]) -> None:
    """subscription.fired / subscription.stale: (subscription, the client whose event it is,
    what happened) for each."""

    def data(sub: Any, extra: dict[str, Any]) -> Data:
        return lambda: {**dumped("subscription", sub), **extra}

    emit_each(event_type, [(client, data(sub, extra)) for sub, client, extra in items])
