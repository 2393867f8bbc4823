"""`client.versions`: a model's versions and their lifecycle."""

from __future__ import annotations

import builtins

from pie_client.pagination import Pager
from pie_client.resources.base import Resource, fields, path
from pie_client.types import JSON, ModelVersion, NewVersionResult, TransitionResult


class Versions(Resource):
    def list(self, model_id: str, *, page_size: int = 100) -> Pager[ModelVersion]:
        """Newest first."""
        return self._list(path("models", model_id, "versions"), ModelVersion.from_dict, page_size)

    def get(self, model_id: str, version: str) -> ModelVersion:
        url = path("models", model_id, "versions", version)
        return self._call("GET", url, ModelVersion.from_dict)

    def create(
        self,
        model_id: str,
        *,
        version: str | None = None,
        description: str | None = None,
        metadata: JSON | None = None,
        feature_schema: builtins.list[JSON] | None = None,
    ) -> NewVersionResult:
        body = fields(
            version=version,
            description=description,
            metadata=metadata,
            feature_schema=feature_schema,
        )
        url = path("models", model_id, "new_version")
        return self._call("POST", url, NewVersionResult.from_dict, body)

    def set_status(self, model_id: str, version: str, status: str) -> TransitionResult:
        url = path("models", model_id, "versions", version, "new_status")
        return self._call("POST", url, TransitionResult.from_dict, {"status": status})
