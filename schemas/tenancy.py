"""Clients, domains, features, services and assignments (contract section 7)."""

from __future__ import annotations

import marshmallow as ma
from pie.schemas.common import (
    ALWAYS_FALSE,
    Identifier,
    JsonObject,
    Schema,
    StrictBoolean,
    Timestamp,
)
from pie.schemas.features import FeatureDefinitionSchema

CLIENT_STATUSES = ("active", "suspended")
DOMAIN_STATUSES = ("active", "inactive")
SERVICE_STATUSES = ("initializing", "available", "failed")
ASSIGNMENT_STATUSES = ("active", "archived")


class ClientCreateSchema(Schema):
    client_id = Identifier(required=True)
    name = ma.fields.String(required=True)
    status = ma.fields.String(load_default="active", validate=ma.validate.OneOf(CLIENT_STATUSES))


class ClientUpdateSchema(Schema):
    name = ma.fields.String()
    status = ma.fields.String(validate=ma.validate.OneOf(CLIENT_STATUSES))


class TenantClientSchema(Schema):
    client_id = ma.fields.String(required=True)
    client_uuid = ma.fields.String(required=True)
    name = ma.fields.String(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(CLIENT_STATUSES))
    created_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)


class DomainCreateSchema(Schema):
    domain_id = Identifier(metadata={"description": "Generated when omitted"})
    features = ma.fields.List(ma.fields.Nested(FeatureDefinitionSchema), load_default=list)
    status = ma.fields.String(load_default="active", validate=ma.validate.OneOf(DOMAIN_STATUSES))


class DomainUpdateSchema(Schema):
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(DOMAIN_STATUSES))


class DomainSchema(Schema):
    client_id = ma.fields.String(required=True)
    domain_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(DOMAIN_STATUSES))
    features = ma.fields.List(ma.fields.Nested(FeatureDefinitionSchema), required=True)
    created_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)


class FeatureListSchema(Schema):
    features = ma.fields.List(ma.fields.Nested(FeatureDefinitionSchema), required=True)


class FeaturesReportSchema(FeatureListSchema):
    unchanged_services = ma.fields.List(ma.fields.String(), required=True)
    services_requiring_reinitialization = ma.fields.List(ma.fields.String(), required=True)


class ServiceInitSchema(Schema):
    service_id = Identifier(required=True)
    departure_datetime = Timestamp(allow_none=True)
    static_features = JsonObject(load_default=dict)


class ServiceInitResultSchema(Schema):
    service_id = ma.fields.String(required=True)
    job_id = ma.fields.String(
        metadata={"description": "Absent when there is no default assignment"}
    )


class ServiceUpdateSchema(Schema):
    departure_datetime = Timestamp(allow_none=True)
    static_features = JsonObject()


class ServiceSchema(Schema):
    client_id = ma.fields.String(required=True)
    domain_id = ma.fields.String(required=True)
    service_id = ma.fields.String(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(SERVICE_STATUSES))
    departure_datetime = Timestamp(allow_none=True, required=True)
    provided_features = JsonObject(required=True)
    resolved_features = JsonObject(required=True)
    created_at = Timestamp(required=True)
    updated_at = Timestamp(required=True)


class ReinitResultSchema(Schema):
    dispatched_services = ma.fields.List(ma.fields.String(), required=True)
    reinitializing_services = ma.fields.List(ma.fields.String(), required=True)


class ServiceUpdateItemSchema(Schema):
    service_id = ma.fields.String(required=True)
    static_features = JsonObject(
        required=True, metadata={"description": "Merged into provided_features; null removes"}
    )


class AssignmentBodySchema(Schema):
    model_id = ma.fields.String(required=True)
    model_version = ma.fields.String(required=True)
    status = ma.fields.String(
        load_default="active", validate=ma.validate.OneOf(ASSIGNMENT_STATUSES)
    )
    role = ma.fields.String(allow_none=True)
    settings = JsonObject(load_default=dict)
    metadata = JsonObject(load_default=dict)
    service_updates = ma.fields.List(
        ma.fields.Nested(ServiceUpdateItemSchema),
        metadata={"description": "Domain 'default' key only"},
    )


class AssignmentCreateSchema(AssignmentBodySchema):
    assignment_key = Identifier(required=True)


class AssignmentSchema(Schema):
    assignment_id = ma.fields.String(required=True)
    assignment_key = ma.fields.String(required=True)
    client_id = ma.fields.String(required=True)
    domain_id = ma.fields.String(required=True)
    service_id = ma.fields.String(allow_none=True, required=True)
    model_id = ma.fields.String(required=True)
    model_version = ma.fields.String(required=True)
    status = ma.fields.String(required=True, validate=ma.validate.OneOf(ASSIGNMENT_STATUSES))
    role = ma.fields.String(allow_none=True, required=True)
    settings = JsonObject(required=True)
    metadata = JsonObject(required=True)
    created_at = Timestamp(required=True)
    archived_at = Timestamp(allow_none=True, required=True)


class AssignmentListArgsSchema(Schema):
    include_archived = ma.fields.Boolean(load_default=False)


class AssignmentJobSchema(Schema):
    job_type = ma.fields.String(
        load_default="inference", validate=ma.validate.OneOf(("inference", "training"))
    )
    input = JsonObject(required=True)
    subscribe = StrictBoolean(load_default=False)


class JobStartedSchema(Schema):
    job_id = ma.fields.String(required=True)


class BlockingServiceSchema(Schema):
    service_id = ma.fields.String(required=True)
    errors = ma.fields.List(ma.fields.String(), required=True)


class BlockedAssignmentSchema(Schema):
    """The 422 of 7.5: the error envelope plus the services that block the assignment."""

    success = ma.fields.Boolean(required=True, metadata=ALWAYS_FALSE)
    message = ma.fields.String(required=True)
    error = ma.fields.String()
    blocking_services = ma.fields.List(ma.fields.Nested(BlockingServiceSchema))
