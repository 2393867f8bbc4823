"""`client.assignments`: stable keys that point at one active model version, in a domain's
scope or, with `service_id`, in one service's."""

from __future__ import annotations

from typing import Any

from pie_client.pagination import Pager
from pie_client.resources.base import Resource, fields, path
from pie_client.types import JSON, Assignment, JobStarted


def scope(client_id: str, domain_id: str, service_id: str | None, *rest: str) -> str:
    service = ("service", service_id) if service_id else ()
    return path("clients", client_id, "domains", domain_id, *service, "assignments", *rest)


class Assignments(Resource):
    def list(
        self,
        client_id: str,
        domain_id: str,
        *,
        service_id: str | None = None,
        include_archived: bool = False,
        page_size: int = 100,
    ) -> Pager[Assignment]:
        url = scope(client_id, domain_id, service_id)
        params = {"include_archived": True} if include_archived else None
        return self._list(url, Assignment.from_dict, page_size, params)

    def get(
        self, client_id: str, domain_id: str, key: str, *, service_id: str | None = None
    ) -> Assignment:
        """The key's active revision."""
        return self._call("GET", scope(client_id, domain_id, service_id, key), Assignment.from_dict)

    def revisions(
        self,
        client_id: str,
        domain_id: str,
        key: str,
        *,
        service_id: str | None = None,
        page_size: int = 100,
    ) -> Pager[Assignment]:
        """Every revision of the key, newest first."""
        url = scope(client_id, domain_id, service_id, key, "revisions")
        return self._list(url, Assignment.from_dict, page_size)

    def create(
        self,
        client_id: str,
        domain_id: str,
        key: str,
        *,
        model_id: str,
        model_version: str,
        service_id: str | None = None,
        **options: Any,
    ) -> Assignment:
        """Upsert by POST to the collection (`status`, `role`, `settings`, `metadata`,
        `service_updates` as keyword arguments)."""
        body = fields(assignment_key=key, model_id=model_id, model_version=model_version, **options)
        url = scope(client_id, domain_id, service_id)
        return self._call("POST", url, Assignment.from_dict, body)

    def put(
        self,
        client_id: str,
        domain_id: str,
        key: str,
        *,
        model_id: str,
        model_version: str,
        service_id: str | None = None,
        **options: Any,
    ) -> Assignment:
        """Upsert by PUT to the key (the same as `create`, addressed by the key)."""
        body = fields(model_id=model_id, model_version=model_version, **options)
        url = scope(client_id, domain_id, service_id, key)
        return self._call("PUT", url, Assignment.from_dict, body)

    def run_job(
        self,
        client_id: str,
        domain_id: str,
        key: str,
        input: JSON,
        *,
        job_type: str = "inference",
        subscribe: bool = False,
        service_id: str | None = None,
    ) -> JobStarted:
        """Start a job on the version the key points at."""
        body = {"input": input, "job_type": job_type, **({"subscribe": True} if subscribe else {})}
        url = scope(client_id, domain_id, service_id, key, "jobs")
        return self._call("POST", url, JobStarted.from_dict, body)
