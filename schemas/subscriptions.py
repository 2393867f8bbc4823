"""Event subscription request and response schemas (contract section 5)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from pie.schemas.common import JsonObject, Schema, Timestamp

TRIGGER_EVENTS = ("training_complete", "inference_complete")
TARGET_ACTIONS = ("inference", "training")
INPUT_SOURCES = ("stored", "trigger_output")
SUBSCRIPTION_STATUSES = ("active", "paused", "stale")


class SubscriptionCreateSchema(Schema):
    trigger_event = ma.fields.String(required=True, validate=ma.validate.OneOf(TRIGGER_EVENTS))
    target_model_id = ma.fields.String(required=True, validate=ma.validate.Length(min=1))
    target_action = ma.fields.String(required=True, validate=ma.validate.OneOf(TARGET_ACTIONS))
    input_source = ma.fields.String(required=True, validate=ma.validate.OneOf(INPUT_SOURCES))
    input = JsonObject(metadata={"description": "Required for stored, rejected for trigger_output"})
    label = ma.fields.String(allow_none=True)


class SubscriptionUpdateSchema(Schema):
    input = JsonObject()
    label = ma.fields.String(allow_none=True)
    status = ma.fields.String(validate=ma.validate.OneOf(SUBSCRIPTION_STATUSES))


class SubscriptionSchema(Schema):
    id = ma.fields.String(required=True)
    source_model_id = ma.fields.String(required=True)
    trigger_event = ma.fields.String(required=True, validate=ma.validate.OneOf(TRIGGER_EVENTS))
    target_model_id = ma.fields.String(required=True)
    target_action = ma.fields.String(required=True, validate=ma.validate.OneOf(TARGET_ACTIONS))
    input_source = ma.fields.String(required=True, validate=ma.validate.OneOf(INPUT_SOURCES))
    input = JsonObject(metadata={"description": "Present for stored input"})
    label = ma.fields.String(allow_none=True, required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(SUBSCRIPTION_STATUSES))
    created_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)
    warnings = ma.fields.List(
        ma.fields.String(), metadata={"description": "Present when non-empty"}
    )
    client_id = ma.fields.String(
        metadata={
            "description": "Present when the subscription belongs to a tenant (made by a "
            "tenant's token, or by `subscribe: true` through an assignment): only that "
            "tenant and admins see it, and its jobs run for that tenant"
        }
    )
    domain_id = ma.fields.String(
        metadata={"description": "Present when made through a domain's assignment"}
    )
    service_id = ma.fields.String(
        metadata={"description": "Present when made through a service's assignment"}
    )

    @ma.post_dump
    def drop_absent(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        for name in ("warnings", "client_id", "domain_id", "service_id"):
            if not data.get(name):
                data.pop(name, None)
        if data.get("input") is None:
            data.pop("input", None)
        return data
