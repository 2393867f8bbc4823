"""/v2/clients: clients (admin-managed), their domains and feature contracts."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from pie.api.base import Blueprint, current_principal, page_of, requires, runtime
from pie.schemas.features import FeatureDefinitionSchema
from pie.schemas.tenancy import (
    ClientCreateSchema,
    ClientUpdateSchema,
    DomainCreateSchema,
    DomainSchema,
    DomainUpdateSchema,
    FeatureListSchema,
    FeaturesReportSchema,
    TenantClientSchema,
)
from pie.services import tenants

blp = Blueprint(
    "clients",
    __name__,
    url_prefix="/v2/clients",
    description="Clients, domains and feature contracts",
)
DOMAIN = "/<client_id>/domains/<domain_id>"


@blp.route("")
class Clients(MethodView):
    @requires("read_domains")
    @blp.response(200, TenantClientSchema(many=True))
    @blp.paginate()
    def get(self, pagination_parameters: Any) -> Any:
        """List the clients this token can access"""
        return page_of(
            pagination_parameters, tenants.list_clients, current_principal().accessible_clients()
        )

    @requires("admin", 409, 413)
    @blp.arguments(ClientCreateSchema)
    @blp.response(201, TenantClientSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a client (admin)"""
        client = tenants.create_client(data)
        runtime().suspended_clients.forget(client.client_id)  # it may be created suspended
        return client


@blp.route("/<client_id>")
class ClientById(MethodView):
    @requires("read_domains", 404, client_route=True)
    @blp.response(200, TenantClientSchema)
    def get(self, client_id: str) -> Any:
        """Read a client"""
        return tenants.get_client(client_id)

    @requires("admin", 404, 413, client_route=True)
    @blp.arguments(ClientUpdateSchema)
    @blp.response(200, TenantClientSchema)
    def put(self, data: dict[str, Any], client_id: str) -> Any:
        """Rename, suspend or re-activate a client (admin)"""
        client = tenants.update_client(client_id, data)
        runtime().suspended_clients.forget(client_id)  # at once in this process
        return client


@blp.route("/<client_id>/domains")
class Domains(MethodView):
    @requires("read_domains", 404)
    @blp.response(200, DomainSchema(many=True))
    @blp.paginate()
    def get(self, client_id: str, pagination_parameters: Any) -> Any:
        """List a client's domains"""
        return page_of(pagination_parameters, tenants.list_domains, client_id)

    @requires("manage_domains", 404, 409, 413, 422)
    @blp.arguments(DomainCreateSchema)
    @blp.response(201, DomainSchema)
    def post(self, data: dict[str, Any], client_id: str) -> Any:
        """Create a domain with its feature definitions"""
        return tenants.create_domain(client_id, data)


@blp.route(DOMAIN)
class DomainById(MethodView):
    @requires("read_domains", 404)
    @blp.response(200, DomainSchema)
    def get(self, client_id: str, domain_id: str) -> Any:
        """Read a domain"""
        return tenants.get_domain(client_id, domain_id)

    @requires("manage_domains", 404, 413)
    @blp.arguments(DomainUpdateSchema)
    @blp.response(200, DomainSchema)
    def put(self, data: dict[str, Any], client_id: str, domain_id: str) -> Any:
        """Activate or deactivate a domain"""
        return tenants.update_domain(client_id, domain_id, data)


@blp.route(f"{DOMAIN}/features")
class Features(MethodView):
    @requires("read_domains", 404)
    @blp.response(200, FeatureDefinitionSchema(many=True))
    def get(self, client_id: str, domain_id: str) -> Any:
        """List the domain's feature definitions"""
        return tenants.get_domain(client_id, domain_id).features

    @requires("manage_domains", 404, 413, 422)
    @blp.arguments(FeatureListSchema)
    @blp.response(200, FeaturesReportSchema)
    def put(self, data: dict[str, Any], client_id: str, domain_id: str) -> Any:
        """Replace the feature definitions; reports which services need re-initialising"""
        return tenants.replace_features(client_id, domain_id, data["features"])
