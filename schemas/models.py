"""Model request and response schemas (contract section 3)."""

from __future__ import annotations

import marshmallow as ma
from pie.schemas.common import Identifier, JsonObject, Schema, Timestamp
from pie.schemas.handlers import HandlerField

MODEL_STATUSES = ("pending", "active")


class HandlersSchema(Schema):
    training = HandlerField(required=True)
    inference = HandlerField(required=True)


class ContractSchema(Schema):
    input_schema = JsonObject(metadata={"description": "Draft 2020-12 schema of the input"})
    output_schema = JsonObject(metadata={"description": "Draft 2020-12 schema of the output"})


class HandlerContractsSchema(Schema):
    training = ma.fields.Nested(ContractSchema)
    inference = ma.fields.Nested(ContractSchema)


class ModelUpdateSchema(Schema):
    name = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    handlers = ma.fields.Nested(HandlersSchema, required=True)
    handler_contracts = ma.fields.Nested(HandlerContractsSchema, allow_none=True, load_default=None)
    metadata = JsonObject(load_default=dict)


class ModelCreateSchema(ModelUpdateSchema):
    id = Identifier(metadata={"description": "Caller-chosen id; a UUIDv7 when omitted"})


class ModelSchema(Schema):
    id = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    handlers = ma.fields.Nested(HandlersSchema, required=True)
    handler_contracts = ma.fields.Nested(HandlerContractsSchema, allow_none=True)
    metadata = JsonObject(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(MODEL_STATUSES))
    latest_version = ma.fields.String(allow_none=True)
    created_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)
