"""`client.services`: a domain's services, initialised through its `default` assignment."""

from __future__ import annotations

from pie_client.pagination import Pager
from pie_client.resources.base import Resource, fields, path
from pie_client.types import JSON, ReinitResult, Service, ServiceInitResult


def domain(client_id: str, domain_id: str, *rest: str) -> str:
    return path("clients", client_id, "domains", domain_id, *rest)


class Services(Resource):
    def list(self, client_id: str, domain_id: str, *, page_size: int = 100) -> Pager[Service]:
        url = domain(client_id, domain_id, "services")
        return self._list(url, Service.from_dict, page_size)

    def get(self, client_id: str, domain_id: str, service_id: str) -> Service:
        url = domain(client_id, domain_id, "service", service_id)
        return self._call("GET", url, Service.from_dict)

    def init(
        self,
        client_id: str,
        domain_id: str,
        service_id: str,
        *,
        static_features: JSON | None = None,
        departure_datetime: str | None = None,
    ) -> ServiceInitResult:
        body = fields(
            service_id=service_id,
            static_features=static_features,
            departure_datetime=departure_datetime,
        )
        url = domain(client_id, domain_id, "service", "init")
        return self._call("POST", url, ServiceInitResult.from_dict, body)

    def update(
        self,
        client_id: str,
        domain_id: str,
        service_id: str,
        *,
        static_features: JSON | None = None,
        departure_datetime: str | None = None,
    ) -> Service:
        body = fields(static_features=static_features, departure_datetime=departure_datetime)
        url = domain(client_id, domain_id, "service", service_id)
        return self._call("PUT", url, Service.from_dict, body)

    def delete(self, client_id: str, domain_id: str, service_id: str) -> None:
        self._delete(domain(client_id, domain_id, "service", service_id))

    def reinit_all(self, client_id: str, domain_id: str) -> ReinitResult:
        """A fresh init job for every service that has not departed."""
        url = domain(client_id, domain_id, "services", "init")
        return self._call("POST", url, ReinitResult.from_dict)
