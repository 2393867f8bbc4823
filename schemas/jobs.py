"""Job request and response schemas (contract section 6)."""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from pie.schemas.common import (
    ID_ERROR,
    ID_PATTERN,
    FullMatch,
    Identifier,
    JsonObject,
    Schema,
    StrictBoolean,
    Timestamp,
)
from pie.schemas.versions import TriggeredEventSchema

JOB_TYPES = ("training", "inference")
JOB_STATUSES = ("pending", "started", "success", "failure")


class InferenceRequestSchema(Schema):
    input = JsonObject(required=True)
    subscribe = StrictBoolean(load_default=False)


class TrainingRequestSchema(Schema):
    input = JsonObject(required=True)


class InferenceStartedSchema(Schema):
    inference_job_id = ma.fields.String(required=True)


class TrainingStartedSchema(Schema):
    training_job_id = ma.fields.String(required=True)


class TriggerSchema(Schema):
    subscription_id = ma.fields.String(required=True)
    parent_job_id = ma.fields.String(allow_none=True, required=True)
    depth = ma.fields.Integer(required=True)


class JobSchema(Schema):
    job_id = ma.fields.String(required=True)
    job_type = ma.fields.String(required=True, validate=ma.validate.OneOf(JOB_TYPES))
    model_id = ma.fields.String(required=True)
    model_version = ma.fields.String(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(JOB_STATUSES))
    input = JsonObject(required=True)
    output = JsonObject(allow_none=True, required=True)
    error = JsonObject(allow_none=True, required=True)
    warnings = ma.fields.List(ma.fields.String(), required=True)
    assignment_id = ma.fields.String(allow_none=True, required=True)
    client_id = ma.fields.String(allow_none=True, required=True)
    domain_id = ma.fields.String(allow_none=True, required=True)
    service_id = ma.fields.String(allow_none=True, required=True)
    trigger = ma.fields.Nested(TriggerSchema, allow_none=True, required=True)
    handler_type = ma.fields.String(required=True)
    external_id = ma.fields.String(allow_none=True, required=True)
    created_at = Timestamp(required=True)
    started_at = Timestamp(allow_none=True, required=True)
    completed_at = Timestamp(allow_none=True, required=True)
    # Job control (PIE extensions).
    attempt = ma.fields.Integer(
        required=True, metadata={"description": "The current attempt, from 1"}
    )
    attempts = ma.fields.List(
        JsonObject(),
        allow_none=True,
        required=True,
        metadata={"description": "Earlier attempts: each one's number, error and end time"},
    )
    deadline_at = Timestamp(
        allow_none=True,
        required=True,
        metadata={"description": "When the started attempt times out"},
    )
    heartbeat_at = Timestamp(
        allow_none=True, required=True, metadata={"description": "Its last heartbeat"}
    )
    progress = ma.fields.Float(
        allow_none=True, required=True, metadata={"description": "0.0 to 1.0"}
    )
    progress_message = ma.fields.String(allow_none=True, required=True)


class JobFilterSchema(Schema):
    status = ma.fields.String(validate=ma.validate.OneOf(JOB_STATUSES))
    job_type = ma.fields.String(validate=ma.validate.OneOf(JOB_TYPES))


class HeartbeatSchema(Schema):
    progress = ma.fields.Float(
        allow_nan=False,
        allow_none=True,
        validate=ma.validate.Range(min=0.0, max=1.0),
        metadata={"description": "How far the job is, 0.0 to 1.0"},
    )
    message = ma.fields.String(
        allow_none=True,
        validate=ma.validate.Length(max=1000),
        metadata={"description": "What it is doing"},
    )


class HeartbeatResultSchema(Schema):
    job_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(JOB_STATUSES))
    attempt = ma.fields.Integer(required=True)
    deadline_at = Timestamp(allow_none=True, required=True)
    heartbeat_at = Timestamp(required=True)


class JobSearchSchema(Schema):
    """GET /v2/jobs: filters (a job must match every one given), the page size and the
    cursor."""

    status = ma.fields.String(validate=ma.validate.OneOf(JOB_STATUSES))
    job_type = ma.fields.String(validate=ma.validate.OneOf(JOB_TYPES))
    model_id = Identifier()
    model_version = Identifier(metadata={"description": "A version of `model_id` (needs it)"})
    client_id = Identifier(
        metadata={"description": "Jobs launched for this client: 403 without access to it"}
    )
    parent_job_id = Identifier(
        metadata={
            "description": "Jobs started by subscriptions when this job completed "
            "(`trigger.parent_job_id`)"
        }
    )
    subscription_id = Identifier(
        metadata={"description": "Jobs this subscription started (`trigger.subscription_id`)"}
    )
    created_after = Timestamp(
        metadata={"description": "Jobs created after this time (RFC 3339, with a timezone)"}
    )
    created_before = Timestamp(
        metadata={"description": "Jobs created before this time (RFC 3339, with a timezone)"}
    )
    page_size = ma.fields.Integer(
        load_default=100,
        validate=ma.validate.Range(1, 1000),
        metadata={"description": "Jobs per page"},
    )
    after = ma.fields.String(
        validate=FullMatch(
            ID_PATTERN,
            error="not a cursor: send the `next_after` of the previous page's X-Pagination "
            "header (a job id), which " + ID_ERROR,
        ),
        metadata={
            "description": "The cursor: the previous page's `next_after` (a job id); the page "
            "lists the matching jobs older than that job"
        },
    )

    @ma.pre_load
    def refuse_page_numbers(self, data: Any, **kwargs: Any) -> Any:
        """A client paging this list by number, as the contract's lists page, would read
        the first page again and again: tell it how this one pages instead."""
        if "page" in data:
            raise ma.ValidationError(
                "this list pages by cursor, not by number: send `after` (the previous "
                "page's X-Pagination `next_after`) instead of `page`",
                field_name="page",
            )
        return data

    @ma.validates_schema
    def version_needs_its_model(self, data: dict[str, Any], **kwargs: Any) -> None:
        if "model_version" in data and "model_id" not in data:
            raise ma.ValidationError(
                "model_version names a version of model_id: send model_id too",
                field_name="model_version",
            )


class JobPageSchema(Schema):
    """The X-Pagination header of GET /v2/jobs: no total, no page count (see its
    description)."""

    page_size = ma.fields.Integer(required=True)
    next_after = ma.fields.String(
        allow_none=True,
        required=True,
        metadata={"description": "The `after` of the next page; null on the last page"},
    )


class CompletionSchema(Schema):
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(("success", "failure")))
    output = JsonObject(allow_none=True)
    error = JsonObject(allow_none=True)


class CompletionResultSchema(Schema):
    job_id = ma.fields.String(required=True)
    model_id = ma.fields.String(required=True)
    model_version = ma.fields.String(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(JOB_STATUSES))
    triggered_events = ma.fields.List(ma.fields.Nested(TriggeredEventSchema), required=True)
    warnings = ma.fields.List(
        ma.fields.String(), metadata={"description": "Present when non-empty"}
    )

    @ma.post_dump
    def drop_empty_warnings(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        if not data.get("warnings"):
            data.pop("warnings", None)
        return data
