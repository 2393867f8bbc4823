"""Assignments in the domain scope and the service scope: upsert by key, read, revisions,
and jobs through a key."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from pie import auth
from pie.api.base import Blueprint, current_principal, page_of, requires, runtime
from pie.schemas.tenancy import (
    AssignmentBodySchema,
    AssignmentCreateSchema,
    AssignmentJobSchema,
    AssignmentListArgsSchema,
    AssignmentSchema,
    BlockedAssignmentSchema,
    JobStartedSchema,
)
from pie.services import assignments

blp = Blueprint(
    "assignments",
    __name__,
    url_prefix="/v2/clients/<client_id>/domains/<domain_id>",
    description="Assignments: stable keys pointing at one active model version",
)
BLOCKED = {
    "schema": BlockedAssignmentSchema,
    "description": "Semantically invalid; a blocked default assignment lists blocking_services",
}


def upsert(
    data: dict[str, Any], client_id: str, domain_id: str, service_id: str | None, key: str
) -> Any:
    revision, created = assignments.upsert(client_id, domain_id, service_id, key, data)
    return revision, 201 if created else 200


def add_scope(prefix: str, scope: str) -> None:
    """Register the assignment routes under one scope (`` or `/service/<service_id>`)."""

    class Collection(MethodView):
        @requires("read_domains", 404)
        @blp.arguments(AssignmentListArgsSchema, location="query")
        @blp.response(200, AssignmentSchema(many=True))
        @blp.paginate()
        def get(
            self,
            args: dict[str, Any],
            client_id: str,
            domain_id: str,
            pagination_parameters: Any,
            service_id: str | None = None,
        ) -> Any:
            """List active assignments (all revisions with include_archived=true)"""
            return page_of(
                pagination_parameters,
                assignments.list_revisions,
                client_id,
                domain_id,
                service_id,
                None,
                args["include_archived"],
            )

        @requires("manage_domains", 404, 409, 413)
        @blp.arguments(AssignmentCreateSchema)
        @blp.response(200, AssignmentSchema)
        @blp.alt_response(
            201, schema=AssignmentSchema, success=True, description="The key's first revision"
        )
        @blp.alt_response(422, **BLOCKED)
        def post(
            self,
            data: dict[str, Any],
            client_id: str,
            domain_id: str,
            service_id: str | None = None,
        ) -> Any:
            """Upsert the assignment named by assignment_key"""
            return upsert(data, client_id, domain_id, service_id, data.pop("assignment_key"))

    class Keyed(MethodView):
        @requires("read_domains", 404)
        @blp.response(200, AssignmentSchema)
        def get(
            self, client_id: str, domain_id: str, assignment_key: str, service_id: str | None = None
        ) -> Any:
            """Read the key's active revision"""
            return assignments.get_active(client_id, domain_id, service_id, assignment_key)

        @requires("manage_domains", 404, 409, 413)
        @blp.arguments(AssignmentBodySchema)
        @blp.response(200, AssignmentSchema)
        @blp.alt_response(
            201, schema=AssignmentSchema, success=True, description="The key's first revision"
        )
        @blp.alt_response(422, **BLOCKED)
        def put(
            self,
            data: dict[str, Any],
            client_id: str,
            domain_id: str,
            assignment_key: str,
            service_id: str | None = None,
        ) -> Any:
            """Upsert the assignment for this key"""
            return upsert(data, client_id, domain_id, service_id, assignment_key)

    class Revisions(MethodView):
        @requires("read_domains", 404)
        @blp.response(200, AssignmentSchema(many=True))
        @blp.paginate()
        def get(
            self,
            client_id: str,
            domain_id: str,
            assignment_key: str,
            pagination_parameters: Any,
            service_id: str | None = None,
        ) -> Any:
            """List every revision of the key, newest first"""
            return page_of(
                pagination_parameters,
                assignments.list_revisions,
                client_id,
                domain_id,
                service_id,
                assignment_key,
                True,
            )

    class Jobs(MethodView):
        @requires(("run_inference", "run_training"), 404, 413, 422)
        @blp.arguments(AssignmentJobSchema)
        @blp.response(202, JobStartedSchema)
        def post(
            self,
            data: dict[str, Any],
            client_id: str,
            domain_id: str,
            assignment_key: str,
            service_id: str | None = None,
        ) -> Any:
            """Run a job through the key's active revision"""
            auth.require(current_principal(), f"run_{data['job_type']}", client_id)
            job = assignments.start_job(
                runtime(), client_id, domain_id, service_id, assignment_key, data
            )
            return {"job_id": job.job_id}

    for view, path in (
        (Collection, "/assignments"),
        (Keyed, "/assignments/<assignment_key>"),
        (Revisions, "/assignments/<assignment_key>/revisions"),
        (Jobs, "/assignments/<assignment_key>/jobs"),
    ):
        named = type(f"{scope}{view.__name__}", (view,), {})
        blp.route(f"{prefix}{path}")(named)


add_scope("", "Domain")
add_scope("/service/<service_id>", "Service")
