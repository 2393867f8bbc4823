"""Webhook endpoints (issue 17): create, read, list, change, delete, rotate the secret.

An endpoint belongs to one client (it receives only that client's events) or, made by an
admin, to none (a global endpoint, which receives every event). Its signing secret is shown
once, when it is made or rotated, and stored encrypted (pie.outbound.secretbox)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from peewee import SQL

from pie.db import database
from pie.errors import BadRequest, NotFound, Unprocessable
from pie.ids import uuid7
from pie.outbound import guard, signing
from pie.outbound.secretbox import SecretBox
from pie.services import outbox
from pie.tables import Webhook, WebhookDelivery, utcnow

# A rotated-out secret keeps signing (beside the new one) this long, so receivers can switch.
ROTATION_OVERLAP = timedelta(hours=24)
STATUSES = ("active", "paused", "disabled")


def check_url(url: str, allowed: guard.Allowed) -> None:
    """As for the `http` handler type: 400 for a URL that is not a well-formed http(s) URL,
    422 for one whose destination the guard refuses whatever DNS says (no lookup here)."""
    try:
        guard.parse_url(url)
    except guard.InvalidURL as exc:
        raise BadRequest(f"json.url: {exc}.") from None
    try:
        guard.check_url(url, allowed)
    except guard.DestinationRefused as exc:
        raise Unprocessable(f"json.url: {exc}.") from None


def create(
    data: dict[str, Any], client_id: str | None, box: SecretBox, allowed: guard.Allowed
) -> tuple[Webhook, str]:
    """A new active endpoint of `client_id` (None: global); (row, its secret in clear)."""
    check_url(data["url"], allowed)
    webhook_id, secret, now = uuid7(), signing.generate_secret(), utcnow()
    row = Webhook.create(
        webhook_id=webhook_id,
        url=data["url"],
        events=data["events"],
        description=data.get("description") or "",
        status=data.get("status") or "active",
        client_id=client_id,
        secret=box.seal(secret, webhook_id),
        created_at=now,
        updated_at=now,
    )
    outbox.forget()
    return row, secret


def visible(clients: frozenset[str] | None) -> Any:
    """The endpoints a caller reaching `clients` (None: every one, an admin) may manage."""
    if clients is None:
        return SQL("1 = 1")
    return Webhook.client_id.in_(sorted(clients)) if clients else SQL("1 = 0")


def get(webhook_id: str, clients: frozenset[str] | None) -> Webhook:
    """The endpoint; 404 when there is none the caller may see (another client's endpoint
    and a missing one answer alike)."""
    row = Webhook.get_or_none((Webhook.webhook_id == webhook_id) & visible(clients))
    if row is None:
        raise NotFound(f"webhook '{webhook_id}' not found")
    return row


def listed(clients: frozenset[str] | None) -> Any:
    """The endpoints a caller reaching `clients` manages, newest first (one statement)."""
    return (
        Webhook.select()
        .where(visible(clients))
        .order_by(Webhook.created_at.desc(), Webhook.webhook_id.desc())
    )


def list_for(
    clients: frozenset[str] | None, page: int, page_size: int
) -> tuple[list[Webhook], int]:
    query = listed(clients)
    return list(query.paginate(page, page_size)), query.count()


def update(
    webhook_id: str, data: dict[str, Any], clients: frozenset[str] | None, allowed: guard.Allowed
) -> Webhook:
    """Replace url, events, description and status. Setting `active` re-enables a disabled
    endpoint: its failing streak starts over, and deliveries still pending are sent."""
    check_url(data["url"], allowed)
    with database.atomic():
        row = get(webhook_id, clients)
        row.url, row.events = data["url"], data["events"]
        row.description = data.get("description") or ""
        status = data.get("status") or row.status
        if status != row.status:
            row.failing_since = None
            row.disabled_reason = "disabled through the API" if status == "disabled" else None
        row.status, row.updated_at = status, utcnow()
        row.save()
    outbox.forget()
    return row


def rotate_secret(webhook_id: str, clients: frozenset[str] | None, box: SecretBox) -> tuple:
    """A new secret; the old one signs too for ROTATION_OVERLAP. (row, the new secret)."""
    secret, now = signing.generate_secret(), utcnow()
    with database.atomic():
        row = get(webhook_id, clients)
        try:  # one sealed with a key since replaced cannot sign: it is dropped
            box.open(row.secret, webhook_id)
            row.previous_secret = row.secret
        except ValueError:
            row.previous_secret = None
        row.previous_secret_expires_at = now + ROTATION_OVERLAP
        row.secret = box.seal(secret, webhook_id)
        row.updated_at = now
        row.save()
    return row, secret


def delete(webhook_id: str, clients: frozenset[str] | None) -> None:
    """The endpoint and its delivery log; pending deliveries are never sent."""
    with database.atomic():
        get(webhook_id, clients)
        WebhookDelivery.delete().where(WebhookDelivery.webhook_id == webhook_id).execute()
        Webhook.delete().where(Webhook.webhook_id == webhook_id).execute()
    outbox.forget()


def signing_secrets(row: Webhook, box: SecretBox) -> list[str]:
    """The secrets that sign a delivery now: the current one, and the previous one while
    its overlap lasts."""
    found = [box.open(row.secret, row.webhook_id)]
    expires = row.previous_secret_expires_at
    if row.previous_secret and expires is not None and expires > utcnow():
        found.append(box.open(row.previous_secret, row.webhook_id))
    return found
