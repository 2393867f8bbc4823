"""Services of a domain: initialise, read, update, delete, and re-initialise them all."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from pie.api.base import Blueprint, page_of, requires, runtime
from pie.schemas.tenancy import (
    ReinitResultSchema,
    ServiceInitResultSchema,
    ServiceInitSchema,
    ServiceSchema,
    ServiceUpdateSchema,
)
from pie.services import service_instances

blp = Blueprint(
    "services",
    __name__,
    url_prefix="/v2/clients/<client_id>/domains/<domain_id>",
    description="Services: initialised instances with resolved features",
)


@blp.route("/service/init")
class ServiceInit(MethodView):
    @requires("init_services", 404, 409, 413, 422)
    @blp.arguments(ServiceInitSchema)
    @blp.response(202, ServiceInitResultSchema)
    def post(self, data: dict[str, Any], client_id: str, domain_id: str) -> Any:
        """Initialise a service: resolve its features and run the default assignment"""
        service, job_id = service_instances.init_service(runtime(), client_id, domain_id, data)
        result = {"service_id": service.service_id}
        if job_id is not None:
            result["job_id"] = job_id
        return result


@blp.route("/services")
class Services(MethodView):
    @requires("read_domains", 404)
    @blp.response(200, ServiceSchema(many=True))
    @blp.paginate()
    def get(self, client_id: str, domain_id: str, pagination_parameters: Any) -> Any:
        """List the domain's services"""
        return page_of(pagination_parameters, service_instances.list_services, client_id, domain_id)


@blp.route("/services/init")
class ServicesReinit(MethodView):
    @requires("init_services", 404, 422)
    @blp.response(202, ReinitResultSchema)
    def post(self, client_id: str, domain_id: str) -> Any:
        """Re-initialise every service that has not departed"""
        ids = service_instances.reinit_all(runtime(), client_id, domain_id)
        return {"dispatched_services": ids, "reinitializing_services": ids}


@blp.route("/service/<service_id>")
class ServiceById(MethodView):
    @requires("read_domains", 404)
    @blp.response(200, ServiceSchema)
    def get(self, client_id: str, domain_id: str, service_id: str) -> Any:
        """Read a service"""
        return service_instances.get_service(client_id, domain_id, service_id)

    @requires("init_services", 404, 413, 422)
    @blp.arguments(ServiceUpdateSchema)
    @blp.response(200, ServiceSchema)
    def put(self, data: dict[str, Any], client_id: str, domain_id: str, service_id: str) -> Any:
        """Update departure or features (re-resolved; no job is started)"""
        return service_instances.update_service(client_id, domain_id, service_id, data)

    @requires("init_services", 404)
    @blp.response(204)
    def delete(self, client_id: str, domain_id: str, service_id: str) -> Any:
        """Delete a service (its jobs stay as history)"""
        service_instances.delete_service(client_id, domain_id, service_id)
