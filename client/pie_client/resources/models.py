"""`client.models`: the registry's models and their job policy."""

from __future__ import annotations

from typing import Any

from pie_client.pagination import Pager
from pie_client.resources.base import Resource, fields, path
from pie_client.types import JSON, Model


class Models(Resource):
    def list(self, *, page_size: int = 100) -> Pager[Model]:
        return self._list(path("models"), Model.from_dict, page_size)

    def get(self, model_id: str) -> Model:
        return self._call("GET", path("models", model_id), Model.from_dict)

    def create(
        self,
        *,
        name: str,
        description: str,
        handlers: JSON,
        id: str | None = None,
        handler_contracts: JSON | None = None,
        metadata: JSON | None = None,
        job_policy: JSON | None = None,
    ) -> Model:
        body = fields(
            id=id,
            name=name,
            description=description,
            handlers=handlers,
            handler_contracts=handler_contracts,
            metadata=metadata,
            job_policy=job_policy,
        )
        return self._call("POST", path("models"), Model.from_dict, body)

    def update(
        self,
        model_id: str,
        *,
        name: str,
        description: str,
        handlers: JSON,
        handler_contracts: JSON | None = None,
        metadata: JSON | None = None,
        job_policy: JSON | None = None,
    ) -> Model:
        """Replace the model (an active model gets a new pending version)."""
        body = fields(
            name=name,
            description=description,
            handlers=handlers,
            handler_contracts=handler_contracts,
            metadata=metadata,
            job_policy=job_policy,
        )
        return self._call("PUT", path("models", model_id), Model.from_dict, body)

    def delete(self, model_id: str) -> None:
        self._delete(path("models", model_id))

    def set_job_policy(self, model_id: str, policy: dict[str, Any]) -> Model:
        """Replace the job policy (`{}` restores the defaults)."""
        return self._call("PUT", path("models", model_id, "job_policy"), Model.from_dict, policy)
