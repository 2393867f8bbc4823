"""The delivery log (issue 17): claiming due deliveries, recording each attempt's outcome,
the retry schedule, disabling failing endpoints, listing and redelivering.

Claims follow the jobs' pattern (pie/services/claims.py): a delivery is sent by the process
whose id is in `claimed_by` until `claimed_until`; every write of an outcome is conditional on
still holding the claim, and the claims of a process that left the registry (it stopped, or
was taken for dead) are voided by any deliverer. On Postgres the due rows are read
`FOR UPDATE SKIP LOCKED`, so racing deliverers take disjoint batches without waiting; on
SQLite the claiming transaction holds the database's write lock, which serialises them."""

from __future__ import annotations

import email.utils
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pie import db, metrics
from pie.db import database
from pie.errors import Conflict, NotFound
from pie.services import outbox
from pie.tables import Process, Webhook, WebhookDelivery, utcnow

log = logging.getLogger(__name__)

HISTORY = 20  # attempts kept in a delivery's history
JITTER = 0.1  # each retry delay is moved by up to ±10%
MAX_RETRY_AFTER = 86400.0  # a Retry-After further off than a day is taken as a day


@dataclass
class Outcome:
    """One attempt: the status the endpoint answered (None: no answer) and how long it took."""

    response_status: int | None
    latency_ms: float
    error: str | None = None
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.response_status is not None and 200 <= self.response_status < 300


def void_orphans() -> int:
    """Clear the claims of owners that have no registry row (a stopped or dead process):
    its deliveries in flight are sent again (same webhook-id) at once."""
    return (
        WebhookDelivery.update(claimed_until=None, claimed_by=None)
        .where(
            WebhookDelivery.claimed_by.is_null(False)
            & WebhookDelivery.claimed_by.not_in(Process.select(Process.id))
            & (WebhookDelivery.status == "pending")
        )
        .execute()
    )


def unclaimed(now: datetime) -> Any:
    return WebhookDelivery.claimed_until.is_null() | (WebhookDelivery.claimed_until < now)


def due_query(webhook_id: str, now: datetime, room: int) -> Any:
    """An active endpoint's due, unclaimed deliveries, oldest due first (the partial index
    webhook_deliveries_due)."""
    return (
        WebhookDelivery.select()
        .where(
            (WebhookDelivery.webhook_id == webhook_id)
            & (WebhookDelivery.status == "pending")
            & (WebhookDelivery.next_attempt_at <= now)
            & unclaimed(now)
        )
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(room)
    )


def claim_due(
    owner: str | None, lease_seconds: float, room: dict[str, int], limit: int
) -> list[WebhookDelivery]:
    """Claim due deliveries of active endpoints: at most `room[endpoint]` of one endpoint
    (default `room["*"]`) and `limit` in all. Endpoints are read in a random order, so
    with more due than `limit` none is always last."""
    now = utcnow()
    active = [
        w for (w,) in Webhook.select(Webhook.webhook_id).where(Webhook.status == "active").tuples()
    ]
    random.shuffle(active)
    wanted = {w: room.get(w, room["*"]) for w in active if room.get(w, room["*"]) > 0}
    # Plain reads first: no write lock is taken when nothing is due.
    due = [w for w in wanted if due_query(w, now, 1).exists()]
    if not due or limit <= 0:
        return []
    chosen: list[WebhookDelivery] = []
    with db.transaction():
        for webhook_id in due:
            query = due_query(webhook_id, now, min(wanted[webhook_id], limit - len(chosen)))
            if db.is_postgres():  # racing deliverers skip one another's rows, not wait
                query = query.for_update("FOR UPDATE SKIP LOCKED")
            chosen += list(query)
            if len(chosen) >= limit:
                break
        if chosen:
            until = now + timedelta(seconds=lease_seconds)
            WebhookDelivery.update(claimed_until=until, claimed_by=owner).where(
                WebhookDelivery.delivery_id.in_([row.delivery_id for row in chosen])
                & unclaimed(now)
            ).execute()
    return chosen


def claim_one(delivery_id: str, owner: str | None, lease_seconds: float) -> bool:
    now = utcnow()
    return (
        WebhookDelivery.update(
            claimed_until=now + timedelta(seconds=lease_seconds), claimed_by=owner
        )
        .where(
            (WebhookDelivery.delivery_id == delivery_id)
            & (WebhookDelivery.status == "pending")
            & unclaimed(now)
        )
        .execute()
        == 1
    )


def release(delivery: WebhookDelivery, owner: str | None) -> None:
    """Give a claim back unsent (its endpoint was paused or disabled meanwhile)."""
    WebhookDelivery.update(claimed_until=None, claimed_by=None).where(
        (WebhookDelivery.delivery_id == delivery.delivery_id) & held_by(owner)
    ).execute()


def held_by(owner: str | None) -> Any:
    claimed = WebhookDelivery.claimed_by
    return (claimed.is_null() if owner is None else claimed == owner) & (
        WebhookDelivery.status == "pending"
    )


def retry_delay(schedule: list[float], attempts: int, outcome: Outcome) -> float | None:
    """Seconds before the next attempt after `attempts` have failed; None when the schedule
    is spent. A Retry-After the endpoint sent replaces the schedule's delay."""
    if attempts >= len(schedule):
        return None
    if outcome.retry_after is not None:
        return min(outcome.retry_after, MAX_RETRY_AFTER)
    delay = schedule[attempts]
    return delay * random.uniform(1 - JITTER, 1 + JITTER)


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (a number, or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # "²" is a digit to str.isdigit, not to float()
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - time.time())


def record(
    delivery: WebhookDelivery,
    outcome: Outcome,
    owner: str | None,
    schedule: list[float],
    disable_after: float,
) -> str | None:
    """Store one attempt's outcome (if the claim is still this process's) and its effect on
    the endpoint. Returns the delivery's new status, None when the claim was lost."""
    now = utcnow()
    attempts = delivery.attempts + 1
    entry = {
        "at": now.isoformat(timespec="milliseconds") + "Z",
        "response_status": outcome.response_status,
        "latency_ms": round(outcome.latency_ms, 1),
        "error": outcome.error,
    }
    fields: dict[str, Any] = {
        "attempts": attempts,
        "response_status": outcome.response_status,
        "latency_ms": round(outcome.latency_ms, 1),
        "error": outcome.error,
        "history": (list(delivery.history or []) + [entry])[-HISTORY:],
        "claimed_until": None,
        "claimed_by": None,
    }
    gone = outcome.response_status == 410
    delay = None if outcome.ok or gone else retry_delay(schedule, attempts, outcome)
    if outcome.ok:
        fields.update(status="delivered", delivered_at=now, next_attempt_at=None)
    elif delay is None:
        fields.update(status="failed", next_attempt_at=None)
    else:
        fields.update(next_attempt_at=now + timedelta(seconds=delay))
    with db.transaction():
        changed = (
            WebhookDelivery.update(**fields)
            .where((WebhookDelivery.delivery_id == delivery.delivery_id) & held_by(owner))
            .execute()
        )
        if not changed:
            return None
        endpoint_after(delivery.webhook_id, outcome, now, disable_after)
    for name, value in fields.items():
        setattr(delivery, name, value)
    return delivery.status


def endpoint_after(webhook_id: str, outcome: Outcome, now: datetime, disable_after: float) -> None:
    """A success ends the endpoint's failing streak; a 410, or a streak longer than
    PIE_WEBHOOK_DISABLE_AFTER_SECONDS, disables it."""
    webhook = Webhook
    if outcome.ok:
        webhook.update(failing_since=None).where(
            (webhook.webhook_id == webhook_id) & webhook.failing_since.is_null(False)
        ).execute()
        return
    if outcome.response_status == 410:
        disable(webhook_id, "the endpoint answered 410 Gone", now)
        return
    webhook.update(failing_since=now).where(
        (webhook.webhook_id == webhook_id) & webhook.failing_since.is_null()
    ).execute()
    since = now - timedelta(seconds=disable_after)
    streak = webhook.get_or_none(
        (webhook.webhook_id == webhook_id) & (webhook.failing_since <= since)
    )
    if streak is not None:
        days = disable_after / 86400
        disable(webhook_id, f"every attempt failed for {days:g} day(s)", now)


def disable(webhook_id: str, reason: str, now: datetime) -> None:
    changed = (
        Webhook.update(status="disabled", disabled_reason=reason, updated_at=now)
        .where((Webhook.webhook_id == webhook_id) & (Webhook.status != "disabled"))
        .execute()
    )
    if changed:
        outbox.forget()
        log.warning(
            "webhook.disabled: webhook %s is disabled: %s",
            webhook_id,
            reason,
            extra={"webhook_id": webhook_id, "event": "webhook.disabled"},
        )
        metrics.webhook_disabled(reason.split(":")[0])


# --- the delivery log -------------------------------------------------------------------


def list_for(
    webhook_id: str, filters: dict[str, Any], page: int, page_size: int
) -> tuple[list[WebhookDelivery], int]:
    """An endpoint's deliveries, newest first, filtered by status and event type."""
    query = listed(webhook_id, filters)
    return list(query.paginate(page, page_size)), query.count()


def listed(webhook_id: str, filters: dict[str, Any]) -> Any:
    """The query of an endpoint's delivery log, newest first, by status and event type."""
    where = WebhookDelivery.webhook_id == webhook_id
    if filters.get("status"):
        where &= WebhookDelivery.status == filters["status"]
    if filters.get("event_type"):
        where &= WebhookDelivery.event_type == filters["event_type"]
    return WebhookDelivery.select().where(where).order_by(WebhookDelivery.delivery_id.desc())


def get(webhook_id: str, delivery_id: str) -> WebhookDelivery:
    row = WebhookDelivery.get_or_none(
        (WebhookDelivery.delivery_id == delivery_id) & (WebhookDelivery.webhook_id == webhook_id)
    )
    if row is None:
        raise NotFound(f"delivery '{delivery_id}' of webhook '{webhook_id}' not found")
    return row


def redeliver(webhook_id: str, delivery_id: str) -> WebhookDelivery:
    """Send a delivery again (same webhook-id), with a fresh retry schedule; 409 while an
    attempt of it is in flight."""
    now = utcnow()
    with database.atomic():
        row = get(webhook_id, delivery_id)
        if row.status == "pending" and row.claimed_until is not None and row.claimed_until > now:
            raise Conflict(f"delivery '{delivery_id}' is being sent now; try again shortly")
        WebhookDelivery.update(
            status="pending",
            attempts=0,
            next_attempt_at=now,
            claimed_until=None,
            claimed_by=None,
            delivered_at=None,
        ).where(WebhookDelivery.delivery_id == delivery_id).execute()
    database.after_commit(outbox.wake)
    return get(webhook_id, delivery_id)


def queue_stats() -> tuple[int, float]:
    """Pending deliveries in the whole database, and the age in seconds of the oldest."""
    from peewee import fn

    count, oldest = (
        WebhookDelivery.select(
            fn.COUNT(WebhookDelivery.delivery_id), fn.MIN(WebhookDelivery.created_at)
        )
        .where(WebhookDelivery.status == "pending")
        .tuples()
        .get()
    )
    if not count or oldest is None:
        return 0, 0.0
    if isinstance(oldest, str):  # SQLite aggregates lose the column's type
        oldest = datetime.fromisoformat(oldest)
    return count, max(0.0, (utcnow() - oldest).total_seconds())
