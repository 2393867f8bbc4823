"""Assignments: stable keys in a domain or service scope pointing at one active model version,
kept as revisions; the frozen feature-schema rule of the domain's `default` key (7.5)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import peewee

from pie.db import database
from pie.errors import Conflict, NotFound, Unprocessable
from pie.ids import uuid7
from pie.rows import lock_by, update_rows
from pie.services import features, jobs, lifecycle, subscriptions, tenants
from pie.tables import Assignment, Domain, Job, ModelVersion, Service, utcnow

if TYPE_CHECKING:
    from pie.runtime import Runtime

DEFAULT_KEY = "default"


def in_scope(client_id: str, domain_id: str, service_id: str | None) -> Any:
    return (
        (Assignment.client_id == client_id)
        & (Assignment.domain_id == domain_id)
        & (Assignment.scope == (service_id or ""))
    )


def check_scope(client_id: str, domain_id: str, service_id: str | None) -> Domain:
    """The domain (and service) named in the path exist."""
    domain = tenants.get_domain(client_id, domain_id)
    if (
        service_id is not None
        and not Service.select()
        .where(
            (Service.client_id == client_id)
            & (Service.domain_id == domain_id)
            & (Service.service_id == service_id)
        )
        .exists()
    ):
        raise NotFound(f"service '{service_id}' not found in domain '{domain_id}'")
    return domain


def active_revision(
    client_id: str, domain_id: str, service_id: str | None, key: str
) -> Assignment | None:
    return (
        Assignment.select()
        .where(
            in_scope(client_id, domain_id, service_id)
            & (Assignment.assignment_key == key)
            & (Assignment.status == "active")
        )
        .first()
    )


def default_revision(client_id: str, domain_id: str) -> Assignment | None:
    return active_revision(client_id, domain_id, None, DEFAULT_KEY)


def get_active(client_id: str, domain_id: str, service_id: str | None, key: str) -> Assignment:
    check_scope(client_id, domain_id, service_id)
    revision = active_revision(client_id, domain_id, service_id, key)
    if revision is None:
        raise NotFound(f"no active assignment for key '{key}'")
    return revision


def list_revisions(
    client_id: str,
    domain_id: str,
    service_id: str | None,
    key: str | None,
    include_archived: bool,
    page: int,
    page_size: int,
) -> tuple[list[Assignment], int]:
    check_scope(client_id, domain_id, service_id)
    query = Assignment.select().where(in_scope(client_id, domain_id, service_id))
    if key is not None:
        query = query.where(Assignment.assignment_key == key)
        if not query.exists():
            raise NotFound(f"no assignment revisions for key '{key}'")
    if not include_archived:
        query = query.where(Assignment.status == "active")
    query = query.order_by(Assignment.created_at.desc(), Assignment.assignment_id.desc())
    return list(query.paginate(page, page_size)), query.count()


def domain_revisions(client_id: str, domain_id: str, limit: int) -> list[Assignment]:
    """Every revision of every assignment of a domain (its own and its services'), archived
    ones included: by scope and key, newest first."""
    query = Assignment.select().where(
        (Assignment.client_id == client_id) & (Assignment.domain_id == domain_id)
    )
    order = (Assignment.scope, Assignment.assignment_key, Assignment.created_at.desc())
    return list(query.order_by(*order, Assignment.assignment_id.desc()).limit(limit))


def assignable_version(model_id: str, model_version: str) -> ModelVersion:
    try:
        version = lifecycle.get_version(model_id, model_version)
    except NotFound as exc:
        raise Unprocessable(f"cannot assign: {exc.message}") from exc
    if version.status != "active":
        raise Unprocessable(
            f"cannot assign: version '{model_version}' of model '{model_id}' "
            f"is {version.status}, not active"
        )
    return version


def patched(provided: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A service_updates patch: keys set their value, null removes the feature."""
    result = copy.deepcopy(provided)
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


@dataclass
class DefaultContract:
    """What 7.5 decided for a new default, outside any transaction: the inputs it read and the
    features each service gets."""

    inputs: list[Any]  # the domain's features (when it decided by them) and its services
    services: dict[str, Service]
    outcomes: dict[str, tuple[dict[str, Any], dict[str, Any]]]  # id -> (provided, resolved)


def contract_inputs(domain: Domain, frozen: bool, services: list[Service]) -> list[Any]:
    rows = [[s.service_id, s.provided_features, s.departure_datetime] for s in services]
    return [None if frozen else domain.features, rows]


def decide_default_contract(
    domain: Domain, version: ModelVersion, updates: list[dict[str, Any]]
) -> DefaultContract:
    """7.5: every staying service must resolve against the new default's frozen schema (after
    its patch); otherwise 422 with blocking_services. Applies user schemas, so it runs before
    the transaction, which checks that `inputs` still hold."""
    rows = tenants.domain_services(domain.client_id, domain.domain_id)
    services = {s.service_id: s for s in rows}
    patches = {u["service_id"]: u.get("static_features") or {} for u in updates}
    unknown = sorted(set(patches) - set(services))
    if unknown:
        raise Unprocessable(f"service_updates names unknown services: {', '.join(unknown)}")
    frozen = version.feature_schema is not None
    definitions = version.feature_schema if frozen else domain.features
    checked = (
        features.staying(list(services.values())) if frozen else [services[sid] for sid in patches]
    )
    blocking, outcomes = [], {}
    for service in sorted(checked, key=lambda s: s.service_id):
        provided = patched(service.provided_features or {}, patches.get(service.service_id, {}))
        resolved, errors = features.resolve(definitions, provided)
        if errors:
            blocking.append({"service_id": service.service_id, "errors": errors})
        outcomes[service.service_id] = (provided, resolved)
    if blocking:
        message = f"cannot assign: {len(blocking)} services are incompatible"
        raise Unprocessable(message, error=message, blocking_services=blocking)
    return DefaultContract(contract_inputs(domain, frozen, rows), services, outcomes)


def apply_default_contract(decided: DefaultContract) -> None:
    """Write the decided features of every service, in the caller's transaction (it adds the
    revision with them: a contract is applied whole or not at all) through one prepared
    statement, so even a domain of 10,000 services holds the write lock briefly."""
    now = utcnow()
    update_rows(
        Service,
        [
            {
                "id": decided.services[service_id].id,
                "provided_features": provided,
                "resolved_features": resolved,
                "updated_at": now,
            }
            for service_id, (provided, resolved) in decided.outcomes.items()
        ],
        key="id",
    )


def upsert(
    client_id: str, domain_id: str, service_id: str | None, key: str, data: dict[str, Any]
) -> tuple[Assignment, bool]:
    """Archive the key's active revision and add a new one; (revision, created first)."""
    domain = check_scope(client_id, domain_id, service_id)  # a missing path resource is 404 first
    updates = data.get("service_updates")
    if updates is not None and (key != DEFAULT_KEY or service_id is not None):
        raise Unprocessable("service_updates is allowed only on the domain's 'default' key")
    version = assignable_version(data["model_id"], data["model_version"])
    frozen = version.feature_schema is not None
    applies = (
        key == DEFAULT_KEY
        and service_id is None
        and data.get("status", "active") == "active"
        and (frozen or updates)
    )
    for _ in range(tenants.DECIDE_ATTEMPTS):
        decided = decide_default_contract(domain, version, updates or []) if applies else None
        try:
            with database.atomic():
                domain = lock_by(Domain, client_id=client_id, domain_id=domain_id)
                if decided is not None:
                    now = contract_inputs(
                        domain, frozen, tenants.domain_services(domain.client_id, domain.domain_id)
                    )
                    if not jobs.same_json(decided.inputs, now):
                        continue  # the domain or a service changed since: decide again
                    apply_default_contract(decided)
                return _add_revision(client_id, domain_id, service_id, key, data)
        except peewee.IntegrityError as exc:
            raise Conflict(f"assignment key '{key}' was changed concurrently; retry") from exc
    raise Conflict(tenants.KEPT_CHANGING)


def _add_revision(
    client_id: str, domain_id: str, service_id: str | None, key: str, data: dict[str, Any]
) -> tuple[Assignment, bool]:
    scope = in_scope(client_id, domain_id, service_id) & (Assignment.assignment_key == key)
    existed = Assignment.select().where(scope).exists()
    now = utcnow()
    Assignment.update(status="archived", archived_at=now).where(
        scope & (Assignment.status == "active")
    ).execute()
    status = data.get("status", "active")
    revision = Assignment.create(
        assignment_id=uuid7(),
        assignment_key=key,
        client_id=client_id,
        domain_id=domain_id,
        service_id=service_id,
        scope=service_id or "",
        model_id=data["model_id"],
        model_version=data["model_version"],
        status=status,
        role=data.get("role"),
        settings=data.get("settings") or {},
        metadata=data.get("metadata") or {},
        created_at=now,
        archived_at=now if status == "archived" else None,
    )
    return revision, not existed


def start_job(
    runtime: Runtime,
    client_id: str,
    domain_id: str,
    service_id: str | None,
    key: str,
    data: dict[str, Any],
) -> Job:
    """A job through the key's active revision, recording the revision and tenant ids."""
    from pie.services import orchestration

    tenants.active_domain(client_id, domain_id)
    check_scope(client_id, domain_id, service_id)
    revision = active_revision(client_id, domain_id, service_id, key)
    if revision is None:
        raise Unprocessable(f"no model is assigned to key '{key}'")
    context = {
        "assignment_id": revision.assignment_id,
        "client_id": client_id,
        "domain_id": domain_id,
        "service_id": service_id,
    }
    if data.get("job_type", "inference") == "training":
        return orchestration.train_new_version(runtime, revision.model_id, data["input"], **context)
    return orchestration.start_inference(
        runtime,
        revision.model_id,
        revision.model_version,
        data["input"],
        subscribe=data.get("subscribe", False),
        max_owned=runtime.config[subscriptions.MAX_OWNED],
        **context,
    )
