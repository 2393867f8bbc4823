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


class JobTypePolicySchema(Schema):
    timeout_seconds = ma.fields.Integer(
        strict=True,
        validate=ma.validate.Range(min=1, max=31_536_000),
        metadata={
            "description": "How long a started attempt may run before it fails with a "
            "`Timeout` (default PIE_JOB_TIMEOUT_SECONDS)"
        },
    )
    heartbeat_timeout_seconds = ma.fields.Integer(
        strict=True,
        allow_none=True,
        validate=ma.validate.Range(min=1, max=31_536_000),
        metadata={
            "description": "A started attempt that sends no heartbeat for this long fails "
            "with a `HeartbeatTimeout` (default: none)"
        },
    )
    max_attempts = ma.fields.Integer(
        strict=True,
        validate=ma.validate.Range(min=1, max=100),
        metadata={"description": "Attempts a job gets in all (default PIE_JOB_MAX_ATTEMPTS)"},
    )
    retry_backoff_seconds = ma.fields.Float(
        allow_nan=False,
        validate=ma.validate.Range(min=0, max=86400),
        metadata={
            "description": "Base of the exponential backoff with jitter before a retry "
            "(default PIE_JOB_RETRY_BACKOFF_SECONDS)"
        },
    )


class JobPolicySchema(Schema):
    training = ma.fields.Nested(JobTypePolicySchema)
    inference = ma.fields.Nested(JobTypePolicySchema)


JOB_POLICY_DESCRIPTION = (
    "Timeouts and retries of the model's jobs, per job type (a PIE extension). Jobs created "
    "afterwards follow a change; a change creates no version. Omitted on a replace: kept."
)


class ModelUpdateSchema(Schema):
    name = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    handlers = ma.fields.Nested(HandlersSchema, required=True)
    handler_contracts = ma.fields.Nested(HandlerContractsSchema, allow_none=True, load_default=None)
    metadata = JsonObject(load_default=dict)
    job_policy = ma.fields.Nested(
        JobPolicySchema, allow_none=True, metadata={"description": JOB_POLICY_DESCRIPTION}
    )


class ModelCreateSchema(ModelUpdateSchema):
    id = Identifier(metadata={"description": "Caller-chosen id; a UUIDv7 when omitted"})


class ModelSchema(Schema):
    id = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    handlers = ma.fields.Nested(HandlersSchema, required=True)
    handler_contracts = ma.fields.Nested(HandlerContractsSchema, allow_none=True, required=True)
    metadata = JsonObject(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(MODEL_STATUSES))
    latest_version = ma.fields.String(allow_none=True, required=True)
    job_policy = ma.fields.Nested(
        JobPolicySchema,
        allow_none=True,
        required=True,
        metadata={"description": JOB_POLICY_DESCRIPTION},
    )
    created_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)
