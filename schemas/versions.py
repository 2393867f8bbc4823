"""Model version request and response schemas (contract section 4)."""

from __future__ import annotations

import marshmallow as ma
from pie.schemas.common import Identifier, JsonObject, Schema, Timestamp
from pie.schemas.features import FeatureDefinitionSchema
from pie.schemas.models import HandlerContractsSchema, HandlersSchema, ModelSchema

VERSION_STATUSES = ("pending", "training", "active", "failed")


class NewVersionSchema(Schema):
    version = Identifier(metadata={"description": "Next integer version when omitted"})
    description = ma.fields.String(load_default="")
    metadata = JsonObject(load_default=dict)
    feature_schema = ma.fields.List(
        ma.fields.Nested(FeatureDefinitionSchema), allow_none=True, load_default=None
    )


class ModelVersionSchema(Schema):
    model_id = ma.fields.String(required=True)
    version = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    metadata = JsonObject(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(VERSION_STATUSES))
    handlers = ma.fields.Nested(HandlersSchema, required=True)
    handler_contracts = ma.fields.Nested(HandlerContractsSchema, allow_none=True, required=True)
    feature_schema = ma.fields.List(
        ma.fields.Nested(FeatureDefinitionSchema), allow_none=True, required=True
    )
    created_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)


class NewVersionResultSchema(Schema):
    model = ma.fields.Nested(ModelSchema, required=True)
    version = ma.fields.Nested(ModelVersionSchema, required=True)


class StatusChangeSchema(Schema):
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(VERSION_STATUSES))


class TriggeredEventSchema(Schema):
    subscription_id = ma.fields.String(required=True)
    job_id = ma.fields.String()
    error = ma.fields.String()


class TransitionResultSchema(NewVersionResultSchema):
    triggered_events = ma.fields.List(ma.fields.Nested(TriggeredEventSchema), required=True)
