"""Webhook endpoint and delivery schemas (issue 17; a PIE extension of the contract)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from pie.schemas.common import Identifier, Schema, Timestamp

from pie import jsonio
from pie.outbound.guard import MAX_URL_LENGTH
from pie.services.outbox import EVENT_TYPES, TEST_EVENT

WEBHOOK_STATUSES = ("active", "paused", "disabled")
DELIVERY_STATUSES = ("pending", "delivered", "failed")
MAX_EVENTS = len(EVENT_TYPES) + 1


def _events_alone(events: list[str]) -> None:
    if "*" in events and len(events) > 1:
        raise ma.ValidationError('"*" (every event) stands alone')
    if len(set(events)) != len(events):
        raise ma.ValidationError("an event type is listed twice")


class WebhookUpdateSchema(Schema):
    url = ma.fields.String(
        required=True,
        validate=ma.validate.Length(min=1, max=MAX_URL_LENGTH),
        metadata={
            "description": "http(s) URL PIE POSTs signed events to; the destination guard "
            "applies (no private or loopback addresses unless PIE_OUTBOUND_ALLOWED_HOSTS "
            "allows them)",
            "example": "https://hooks.example.com/pie",
        },
    )
    events = ma.fields.List(
        ma.fields.String(validate=ma.validate.OneOf((*EVENT_TYPES, "*"))),
        required=True,
        validate=[ma.validate.Length(min=1, max=MAX_EVENTS), _events_alone],
        metadata={"description": 'Event types to receive, or ["*"] for every one'},
    )
    description = ma.fields.String(load_default="", validate=ma.validate.Length(max=1000))
    status = ma.fields.String(
        validate=ma.validate.OneOf(WEBHOOK_STATUSES),
        metadata={
            "description": "active: events are sent; paused: events are kept and sent once it "
            "is active again; disabled: no events are kept (PIE disables an endpoint that "
            "answers 410 or fails for PIE_WEBHOOK_DISABLE_AFTER_SECONDS)",
        },
    )


class WebhookCreateSchema(WebhookUpdateSchema):
    status = ma.fields.String(
        load_default="active", validate=ma.validate.OneOf(("active", "paused"))
    )
    client_id = Identifier(
        metadata={
            "description": "The client whose events it receives: a tenant's token's own "
            "client when omitted; an admin's token makes a global endpoint (every event) "
            "when omitted"
        }
    )


class WebhookSchema(Schema):
    webhook_id = ma.fields.String(required=True)
    url = ma.fields.String(required=True)
    events = ma.fields.List(ma.fields.String(), required=True)
    description = ma.fields.String(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(WEBHOOK_STATUSES))
    client_id = ma.fields.String(
        allow_none=True, required=True, metadata={"description": "null: a global endpoint"}
    )
    disabled_reason = ma.fields.String(
        allow_none=True, metadata={"description": "Why PIE (or a caller) disabled it"}
    )
    created_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)


class WebhookWithSecretSchema(WebhookSchema):
    secret = ma.fields.String(
        required=True,
        attribute="new_secret",
        metadata={
            "description": "The signing secret (whsec_…), shown only when the endpoint is made "
            "and when its secret is rotated"
        },
    )


class DeliveryFilterSchema(Schema):
    status = ma.fields.String(validate=ma.validate.OneOf(DELIVERY_STATUSES))
    event_type = ma.fields.String(validate=ma.validate.OneOf((*EVENT_TYPES, TEST_EVENT)))


class AttemptSchema(Schema):
    at = ma.fields.String(required=True)
    response_status = ma.fields.Integer(allow_none=True, required=True)
    latency_ms = ma.fields.Float(required=True)
    error = ma.fields.String(allow_none=True, required=True)


class DeliverySchema(Schema):
    delivery_id = ma.fields.String(
        required=True, metadata={"description": "The webhook-id header of every attempt"}
    )
    webhook_id = ma.fields.String(required=True)
    event_type = ma.fields.String(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(DELIVERY_STATUSES))
    attempts = ma.fields.Integer(required=True, metadata={"description": "Attempts so far"})
    response_status = ma.fields.Integer(
        allow_none=True, required=True, metadata={"description": "The last attempt's status"}
    )
    latency_ms = ma.fields.Float(allow_none=True, required=True)
    error = ma.fields.String(allow_none=True, required=True)
    next_attempt_at = Timestamp(
        allow_none=True, required=True, metadata={"description": "null once it has ended"}
    )
    created_at = Timestamp(required=True)
    delivered_at = Timestamp(allow_none=True, required=True)
    history = ma.fields.List(
        ma.fields.Nested(AttemptSchema), required=True, metadata={"description": "Latest attempts"}
    )
    payload = ma.fields.Method(
        "event_body", metadata={"description": "The event as sent: type, timestamp, data"}
    )

    def event_body(self, row: Any) -> Any:
        return jsonio.loads_stored(row.body)
