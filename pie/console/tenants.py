"""Tenants: the clients a token can access, a client's domains, and one domain's feature
contract, services and assignments with their revision history."""

from __future__ import annotations

from typing import Any

from flask import g

from pie.api.base import requires
from pie.console.base import LIST_LIMIT, bp, render
from pie.services import assignments, service_instances, tenants


@bp.route("/clients")
@requires("read_domains")
def clients() -> Any:
    """As GET /v2/clients: only the clients this token can access."""
    found = tenants.clients_query(g.principal.accessible_clients()).limit(LIST_LIMIT)
    return render("clients.html", clients=list(found), limit=LIST_LIMIT)


@bp.route("/clients/<client_id>")
@requires("read_domains", client_route=True)
def client(client_id: str) -> Any:
    """The client, as GET /v2/clients/{client_id}; its domains as GET …/domains, which a
    suspended client's are not."""
    found = tenants.get_client(client_id)
    domains = []
    if found.status == "active":
        domains = list(tenants.domains_query(client_id).limit(LIST_LIMIT))
    return render("client.html", client=found, domains=domains)


@bp.route("/clients/<client_id>/domains/<domain_id>")
@requires("read_domains")
def domain(client_id: str, domain_id: str) -> Any:
    found = tenants.get_domain(client_id, domain_id)
    services = service_instances.services_query(client_id, domain_id).limit(LIST_LIMIT)
    revisions = assignments.domain_revisions(client_id, domain_id, LIST_LIMIT)
    return render(
        "domain.html",
        client_id=client_id,
        domain=found,
        services=list(services),
        revisions=revisions,
    )
