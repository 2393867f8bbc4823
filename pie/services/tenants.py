"""Clients, domains and their feature contracts."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterable
from typing import Any

import peewee

from pie import contracts
from pie.db import database
from pie.errors import Conflict, Forbidden, NotFound, Unprocessable
from pie.ids import uuid7
from pie.rows import get_by
from pie.services import features
from pie.services.jobs import same_json
from pie.tables import Client, Domain, Service, utcnow


def get_client(client_id: str) -> Client:
    client = get_by(Client, client_id=client_id)
    if client is None:
        raise NotFound(f"client '{client_id}' not found")
    return client


def ensure_client_active(client_id: str) -> Client:
    """Every route under a client: it must exist (404) and not be suspended (403)."""
    client = get_client(client_id)
    if client.status == "suspended":
        raise Forbidden(f"client '{client_id}' is suspended")
    return client


# How long a process trusts what it read of a client's status (a suspension made by another
# process takes effect within this; one made by this process at once).
CLIENT_STATUS_SECONDS = 5.0
CLIENT_STATUS_ENTRIES = 4096


class SuspendedClients:
    """Which clients are suspended, for the checks on every request of a tenant's token: one
    query per client at most every CLIENT_STATUS_SECONDS in a process, the rest from
    memory. A client that does not exist is not suspended."""

    def __init__(self) -> None:
        self._seen: dict[str, tuple[bool, float]] = {}  # client -> (suspended, until)
        self._lock = threading.Lock()

    def among(self, client_ids: Iterable[str]) -> frozenset[str]:
        """The suspended ones of `client_ids`."""
        now, seen = time.monotonic(), self._seen
        found, stale = set(), []
        for client_id in client_ids:
            entry = seen.get(client_id)
            if entry is None or entry[1] <= now:
                stale.append(client_id)
            elif entry[0]:
                found.add(client_id)
        if stale:
            query = Client.select(Client.client_id).where(
                Client.client_id.in_(stale) & (Client.status == "suspended")
            )
            suspended = {client_id for (client_id,) in query.tuples()}
            found |= suspended
            until = now + CLIENT_STATUS_SECONDS
            with self._lock:
                if len(seen) + len(stale) > CLIENT_STATUS_ENTRIES:
                    seen.clear()
                for client_id in stale:
                    seen[client_id] = (client_id in suspended, until)
        return frozenset(found)

    def forget(self, client_id: str) -> None:
        """Read the client's status again next time (this process changed it)."""
        with self._lock:
            self._seen.pop(client_id, None)


def list_clients(
    visible: frozenset[str] | None, page: int, page_size: int
) -> tuple[list[Client], int]:
    query = clients_query(visible)
    return list(query.paginate(page, page_size)), query.count()


def clients_query(visible: frozenset[str] | None) -> Any:
    """The clients in `visible` (None: all), oldest first."""
    query = Client.select().order_by(Client.created_at, Client.client_id)
    if visible is not None:
        query = query.where(Client.client_id.in_(list(visible)))
    return query


def create_client(data: dict[str, Any]) -> Client:
    now = utcnow()
    try:
        with database.atomic():
            return Client.create(
                client_id=data["client_id"],
                client_uuid=str(uuid.uuid4()),
                name=data["name"],
                status=data.get("status", "active"),
                created_at=now,
                updated_at=now,
            )
    except peewee.IntegrityError as exc:
        raise Conflict(f"client '{data['client_id']}' already exists") from exc


def update_client(client_id: str, data: dict[str, Any]) -> Client:
    client = get_client(client_id)
    for name in ("name", "status"):
        if name in data:
            setattr(client, name, data[name])
    client.updated_at = utcnow()
    client.save()
    return client


def get_domain(client_id: str, domain_id: str) -> Domain:
    domain = Domain.get_or_none((Domain.client_id == client_id) & (Domain.domain_id == domain_id))
    if domain is None:
        raise NotFound(f"domain '{domain_id}' not found for client '{client_id}'")
    return domain


def active_domain(client_id: str, domain_id: str) -> Domain:
    domain = get_domain(client_id, domain_id)
    if domain.status != "active":
        raise Unprocessable(f"domain '{domain_id}' is {domain.status}")
    return domain


def list_domains(client_id: str, page: int, page_size: int) -> tuple[list[Domain], int]:
    query = domains_query(client_id)
    return list(query.paginate(page, page_size)), query.count()


def domains_query(client_id: str) -> Any:
    """A client's domains, oldest first."""
    return (
        Domain.select()
        .where(Domain.client_id == client_id)
        .order_by(Domain.created_at, Domain.domain_id)
    )


def check_features(definitions: list[dict[str, Any]]) -> None:
    problems = contracts.feature_definition_problems(definitions)
    if problems:
        raise Unprocessable("invalid feature definitions: " + "; ".join(problems))


def create_domain(client_id: str, data: dict[str, Any]) -> Domain:
    definitions = data.get("features") or []
    check_features(definitions)
    domain_id = data.get("domain_id") or uuid7()
    now = utcnow()
    try:
        with database.atomic():
            return Domain.create(
                client_id=client_id,
                domain_id=domain_id,
                status=data.get("status", "active"),
                features=definitions,
                created_at=now,
                updated_at=now,
            )
    except peewee.IntegrityError as exc:
        raise Conflict(f"domain '{domain_id}' already exists") from exc


def update_domain(client_id: str, domain_id: str, data: dict[str, Any]) -> Domain:
    domain = get_domain(client_id, domain_id)
    if "status" in data:
        domain.status = data["status"]
    domain.updated_at = utcnow()
    domain.save()
    return domain


# Work decided outside a transaction (applying users' schemas) is checked inside it and decided
# again when the domain's services changed meanwhile: so many times at most, then a 409.
DECIDE_ATTEMPTS = 5
KEPT_CHANGING = "the domain's services kept changing while this was applied; retry"


def replace_features(
    client_id: str, domain_id: str, definitions: list[dict[str, Any]]
) -> dict[str, Any]:
    """Replace the domain's feature list and report which services would resolve differently
    (or not at all) under it. Services are resolved before the transaction (no user schema is
    applied while it holds the write lock), which starts over if any of them changed."""
    check_features(definitions)
    get_domain(client_id, domain_id)
    for _ in range(DECIDE_ATTEMPTS):
        before = domain_services(client_id, domain_id)
        outcomes = {s.service_id: resolution(definitions, s) for s in before}
        with database.atomic():
            domain = get_domain(client_id, domain_id)
            services = domain_services(client_id, domain_id)
            if not same_services(before, services):
                continue
            domain.features, domain.updated_at = definitions, utcnow()
            domain.save()
        break
    else:
        raise Conflict(KEPT_CHANGING)
    unchanged, requiring = [], []
    for service in features.staying(services):
        resolved, errors = outcomes[service.service_id]
        same = not errors and resolved == service.resolved_features
        (unchanged if same else requiring).append(service.service_id)
    return {
        "features": definitions,
        "unchanged_services": unchanged,
        "services_requiring_reinitialization": requiring,
    }


def domain_services(client_id: str, domain_id: str) -> list[Service]:
    """A domain's services, by id."""
    return list(
        Service.select()
        .where((Service.client_id == client_id) & (Service.domain_id == domain_id))
        .order_by(Service.service_id)
    )


def resolution(definitions: list[dict[str, Any]], service: Service) -> Any:
    return features.resolve(definitions, service.provided_features or {})


def same_services(before: list[Service], after: list[Service]) -> bool:
    """Whether two reads of a domain's services hold the same services with the same
    provided features (what resolving them depends on)."""
    return same_json(
        [[s.service_id, s.provided_features] for s in before],
        [[s.service_id, s.provided_features] for s in after],
    )
