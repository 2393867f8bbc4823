"""Typed results, one dataclass per response object of the OpenAPI document (fields the
server always sends have no default; `tests/client/test_coverage.py` checks every field)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from pie_client.records import Record

JSON = dict[str, Any]

__all__ = [
    "Assignment", "Domain", "FeatureDefinition", "FeaturesReport", "Health", "HeartbeatResult",
    "InferenceStarted", "Job", "JobStarted", "Model", "ModelVersion", "NewVersionResult",
    "CompletionResult", "ReinitResult", "Record", "Service", "ServiceInitResult", "Subscription",
    "Tenant", "TrainingStarted", "TransitionResult", "Trigger", "TriggeredEvent",
    "Webhook", "Delivery", "DeliveryAttempt",
]  # fmt: skip


@dataclass(kw_only=True)
class Health(Record):
    status: str
    database: str
    version: str


@dataclass(kw_only=True)
class Model(Record):
    id: str
    name: str
    description: str
    handlers: JSON
    metadata: JSON
    status: str
    created_at: str
    updated_at: str
    handler_contracts: JSON | None = None
    latest_version: str | None = None
    job_policy: JSON | None = None


@dataclass(kw_only=True)
class ModelVersion(Record):
    model_id: str
    version: str
    description: str
    metadata: JSON
    status: str
    handlers: JSON
    created_at: str
    updated_at: str
    handler_contracts: JSON | None = None
    feature_schema: list[JSON] | None = None


@dataclass(kw_only=True)
class NewVersionResult(Record):
    NESTED: ClassVar[dict[str, type[Record]]] = {"model": Model, "version": ModelVersion}
    model: Model
    version: ModelVersion


@dataclass(kw_only=True)
class TriggeredEvent(Record):
    subscription_id: str
    job_id: str | None = None
    error: str | None = None


@dataclass(kw_only=True)
class TransitionResult(Record):
    NESTED: ClassVar[dict[str, type[Record]]] = {
        "model": Model,
        "version": ModelVersion,
        "triggered_events": TriggeredEvent,
    }
    model: Model
    version: ModelVersion
    triggered_events: list[TriggeredEvent]


@dataclass(kw_only=True)
class InferenceStarted(Record):
    inference_job_id: str


@dataclass(kw_only=True)
class TrainingStarted(Record):
    training_job_id: str


@dataclass(kw_only=True)
class JobStarted(Record):
    job_id: str


@dataclass(kw_only=True)
class Trigger(Record):
    subscription_id: str
    parent_job_id: str | None
    depth: int


@dataclass(kw_only=True)
class Job(Record):
    NESTED: ClassVar[dict[str, type[Record]]] = {"trigger": Trigger}
    job_id: str
    job_type: str
    model_id: str
    model_version: str
    status: str
    input: JSON
    output: JSON | None
    error: JSON | None
    warnings: list[str]
    assignment_id: str | None
    client_id: str | None
    domain_id: str | None
    service_id: str | None
    trigger: Trigger | None
    handler_type: str
    external_id: str | None
    created_at: str
    started_at: str | None
    completed_at: str | None
    attempt: int = 1
    attempts: list[JSON] | None = None
    deadline_at: str | None = None
    heartbeat_at: str | None = None
    progress: float | None = None
    progress_message: str | None = None

    @property
    def ended(self) -> bool:
        return self.status in ("success", "failure")


@dataclass(kw_only=True)
class CompletionResult(Record):
    NESTED: ClassVar[dict[str, type[Record]]] = {"triggered_events": TriggeredEvent}
    job_id: str
    model_id: str
    model_version: str
    status: str
    triggered_events: list[TriggeredEvent]
    warnings: list[str] = field(default_factory=list)


@dataclass(kw_only=True)
class HeartbeatResult(Record):
    job_id: str
    status: str
    attempt: int
    deadline_at: str | None
    heartbeat_at: str


@dataclass(kw_only=True)
class Subscription(Record):
    id: str
    source_model_id: str
    trigger_event: str
    target_model_id: str
    target_action: str
    input_source: str
    label: str | None
    status: str
    created_at: str
    updated_at: str
    input: JSON | None = None
    warnings: list[str] = field(default_factory=list)
    client_id: str | None = None
    domain_id: str | None = None
    service_id: str | None = None


@dataclass(kw_only=True)
class Tenant(Record):
    """A client of PIE (the API's `Client` object), named apart from this library's Client."""

    client_id: str
    client_uuid: str
    name: str
    status: str
    created_at: str
    updated_at: str


@dataclass(kw_only=True)
class FeatureDefinition(Record):
    name: str
    json_schema: JSON
    mandatory: bool


@dataclass(kw_only=True)
class Domain(Record):
    NESTED: ClassVar[dict[str, type[Record]]] = {"features": FeatureDefinition}
    client_id: str
    domain_id: str
    status: str
    features: list[FeatureDefinition]
    created_at: str
    updated_at: str


@dataclass(kw_only=True)
class FeaturesReport(Record):
    NESTED: ClassVar[dict[str, type[Record]]] = {"features": FeatureDefinition}
    features: list[FeatureDefinition]
    unchanged_services: list[str]
    services_requiring_reinitialization: list[str]


@dataclass(kw_only=True)
class Service(Record):
    client_id: str
    domain_id: str
    service_id: str
    status: str
    departure_datetime: str | None
    provided_features: JSON
    resolved_features: JSON
    created_at: str
    updated_at: str


@dataclass(kw_only=True)
class ServiceInitResult(Record):
    service_id: str
    job_id: str | None = None


@dataclass(kw_only=True)
class ReinitResult(Record):
    dispatched_services: list[str]
    reinitializing_services: list[str]


@dataclass(kw_only=True)
class Assignment(Record):
    assignment_id: str
    assignment_key: str
    client_id: str
    domain_id: str
    service_id: str | None
    model_id: str
    model_version: str
    status: str
    role: str | None
    settings: JSON
    metadata: JSON
    created_at: str
    archived_at: str | None


@dataclass(kw_only=True)
class Webhook(Record):
    """A webhook endpoint; `secret` only in the answers that make or rotate it."""

    webhook_id: str
    url: str
    events: list[str]
    description: str
    status: str
    client_id: str | None
    created_at: str
    updated_at: str
    disabled_reason: str | None = None
    secret: str | None = None


@dataclass(kw_only=True)
class DeliveryAttempt(Record):
    at: str
    response_status: int | None
    latency_ms: float
    error: str | None


@dataclass(kw_only=True)
class Delivery(Record):
    """One event for one endpoint: its attempts so far and the event as sent (`payload`)."""

    NESTED: ClassVar[dict[str, type[Record]]] = {"history": DeliveryAttempt}
    delivery_id: str
    webhook_id: str
    event_type: str
    status: str
    attempts: int
    response_status: int | None
    latency_ms: float | None
    error: str | None
    next_attempt_at: str | None
    created_at: str
    delivered_at: str | None
    history: list[DeliveryAttempt] = field(default_factory=list)
    payload: JSON | None = None
