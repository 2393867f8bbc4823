"""`client.clients` and `client.domains`: the tenants and their domains."""

from __future__ import annotations

import builtins

from pie_client.pagination import Pager
from pie_client.resources.base import Resource, fields, path
from pie_client.types import JSON, Domain, Tenant


class Clients(Resource):
    def list(self, *, page_size: int = 100) -> Pager[Tenant]:
        """The clients this token can access."""
        return self._list(path("clients"), Tenant.from_dict, page_size)

    def get(self, client_id: str) -> Tenant:
        return self._call("GET", path("clients", client_id), Tenant.from_dict)

    def create(self, client_id: str, name: str, *, status: str | None = None) -> Tenant:
        body = fields(client_id=client_id, name=name, status=status)
        return self._call("POST", path("clients"), Tenant.from_dict, body)

    def update(
        self, client_id: str, *, name: str | None = None, status: str | None = None
    ) -> Tenant:
        body = fields(name=name, status=status)
        return self._call("PUT", path("clients", client_id), Tenant.from_dict, body)


class Domains(Resource):
    def list(self, client_id: str, *, page_size: int = 100) -> Pager[Domain]:
        return self._list(path("clients", client_id, "domains"), Domain.from_dict, page_size)

    def get(self, client_id: str, domain_id: str) -> Domain:
        url = path("clients", client_id, "domains", domain_id)
        return self._call("GET", url, Domain.from_dict)

    def create(
        self,
        client_id: str,
        *,
        domain_id: str | None = None,
        features: builtins.list[JSON] | None = None,
        status: str | None = None,
    ) -> Domain:
        body = fields(domain_id=domain_id, features=features, status=status)
        return self._call("POST", path("clients", client_id, "domains"), Domain.from_dict, body)

    def update(self, client_id: str, domain_id: str, *, status: str) -> Domain:
        url = path("clients", client_id, "domains", domain_id)
        return self._call("PUT", url, Domain.from_dict, {"status": status})
