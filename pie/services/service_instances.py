"""Services (tenant instances): init with resolved features and an inference job through the
domain's `default` assignment, update, delete, and re-initialise them all."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import peewee

from pie.db import database
from pie.errors import Conflict, NotFound, Unprocessable
from pie.services import assignments, features, jobs, lifecycle, orchestration, tenants
from pie.tables import Assignment, Domain, ModelVersion, Service, utcnow

if TYPE_CHECKING:
    from pie.runtime import Runtime


def get_service(client_id: str, domain_id: str, service_id: str) -> Service:
    tenants.get_domain(client_id, domain_id)
    service = Service.get_or_none(
        (Service.client_id == client_id)
        & (Service.domain_id == domain_id)
        & (Service.service_id == service_id)
    )
    if service is None:
        raise NotFound(f"service '{service_id}' not found in domain '{domain_id}'")
    return service


def list_services(
    client_id: str, domain_id: str, page: int, page_size: int
) -> tuple[list[Service], int]:
    tenants.get_domain(client_id, domain_id)
    query = services_query(client_id, domain_id)
    return list(query.paginate(page, page_size)), query.count()


def services_query(client_id: str, domain_id: str) -> Any:
    """A domain's services, oldest first."""
    return (
        Service.select()
        .where((Service.client_id == client_id) & (Service.domain_id == domain_id))
        .order_by(Service.created_at, Service.service_id)
    )


def contract_in_force(domain: Domain, default: Assignment | None) -> list[dict[str, Any]]:
    """The default assignment's frozen feature_schema when it has one, else the domain's."""
    if default is not None:
        version = lifecycle.get_version(default.model_id, default.model_version)
        if version.feature_schema is not None:
            return version.feature_schema
    return domain.features or []


def _start_init_job(
    runtime: Runtime, service: Service, default: Assignment, version: ModelVersion
) -> str:
    """The service's init job (in the caller's transaction; its input checked before it)."""
    job = orchestration.add_checked_inference(
        runtime,
        version,
        service.resolved_features,
        assignment_id=default.assignment_id,
        client_id=service.client_id,
        domain_id=service.domain_id,
        service_id=service.service_id,
    )
    service.status, service.init_job_id, service.updated_at = "initializing", job.job_id, utcnow()
    service.save()
    return job.job_id


def init_service(
    runtime: Runtime, client_id: str, domain_id: str, data: dict[str, Any]
) -> tuple[Service, str | None]:
    """Store a service with its resolved features and start its init job (when the domain
    has an active `default` assignment); (service, job id or None)."""
    domain = tenants.active_domain(client_id, domain_id)
    default = assignments.default_revision(client_id, domain_id)
    provided = data.get("static_features") or {}
    resolved = features.resolve_or_422(contract_in_force(domain, default), provided)
    version = None
    if default is not None:  # its input is checked here, outside the transaction
        version = orchestration.inference_version(default.model_id, default.model_version)
        jobs.check_input(version, "inference", resolved)
    now = utcnow()
    try:
        with database.atomic():
            service = Service.create(
                client_id=client_id,
                domain_id=domain_id,
                service_id=data["service_id"],
                status="available",
                departure_datetime=data.get("departure_datetime"),
                provided_features=provided,
                resolved_features=resolved,
                created_at=now,
                updated_at=now,
            )
            job_id = _start_init_job(runtime, service, default, version) if version else None
    except peewee.IntegrityError as exc:
        raise Conflict(f"service '{data['service_id']}' already exists") from exc
    return service, job_id


def update_service(
    client_id: str, domain_id: str, service_id: str, data: dict[str, Any]
) -> Service:
    """Change departure and/or replace provided features (re-resolved); starts no job."""
    domain = tenants.get_domain(client_id, domain_id)
    service = get_service(client_id, domain_id, service_id)
    if "static_features" in data:
        default = assignments.default_revision(client_id, domain_id)
        provided = data["static_features"] or {}
        service.resolved_features = features.resolve_or_422(
            contract_in_force(domain, default), provided
        )
        service.provided_features = provided
    if "departure_datetime" in data:
        service.departure_datetime = data["departure_datetime"]
    service.updated_at = utcnow()
    service.save()
    return service


def delete_service(client_id: str, domain_id: str, service_id: str) -> None:
    service = get_service(client_id, domain_id, service_id)
    with database.atomic():
        Assignment.delete().where(
            (Assignment.client_id == client_id)
            & (Assignment.domain_id == domain_id)
            & (Assignment.scope == service_id)
        ).execute()
        service.delete_instance()


# Services re-initialised per write transaction: a domain of 10,000 services in one would hold
# SQLite's write lock for seconds, and every other writer on the server would wait for it
# (bench/reinit.py). Between batches other writers go on.
REINIT_BATCH = 200
# Problems named in a refused re-init's message; the rest are counted.
REINIT_PROBLEMS_SHOWN = 20


def reinit_all(runtime: Runtime, client_id: str, domain_id: str) -> list[str]:
    """A fresh init job for every staying service, from its stored resolved features; all
    inputs are checked first, so a failing one changes nothing (422 naming it). The jobs are
    written REINIT_BATCH services per transaction; should the database fail between two
    batches, the services before it are re-initialising and a repeated call starts them all
    again (as a repeated re-init always does)."""
    tenants.active_domain(client_id, domain_id)
    default = assignments.default_revision(client_id, domain_id)
    if default is None:
        raise Unprocessable(f"domain '{domain_id}' has no active 'default' assignment")
    version = orchestration.inference_version(default.model_id, default.model_version)
    services = features.staying(tenants.domain_services(client_id, domain_id))
    problems = []
    for service in services:
        try:
            jobs.check_input(version, "inference", service.resolved_features)
        except Unprocessable as exc:
            problems.append(f"{service.service_id}: {exc.message}")
    if problems:
        shown = problems[:REINIT_PROBLEMS_SHOWN]
        if len(problems) > len(shown):
            shown.append(f"and {len(problems) - len(shown)} more services")
        raise Unprocessable("cannot re-initialise: " + "; ".join(shown))
    for start in range(0, len(services), REINIT_BATCH):
        with database.atomic():
            for service in services[start : start + REINIT_BATCH]:
                _start_init_job(runtime, service, default, version)
    return [s.service_id for s in services]
