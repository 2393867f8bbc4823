"""/v2/models: list, create, read, replace and delete models."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from pie.api.base import Blueprint, page_of, requires, runtime
from pie.schemas.models import JobPolicySchema, ModelCreateSchema, ModelSchema, ModelUpdateSchema
from pie.services import registry

blp = Blueprint("models", __name__, url_prefix="/v2", description="Registered models")


@blp.route("/models")
class Models(MethodView):
    @requires("read_models")
    @blp.response(200, ModelSchema(many=True))
    @blp.paginate()
    def get(self, pagination_parameters: Any) -> Any:
        """List models"""
        return page_of(pagination_parameters, registry.list_models)

    @requires("manage_models", 409, 413, 422)
    @blp.arguments(ModelCreateSchema)
    @blp.response(201, ModelSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Register a model (and its version "1")"""
        return registry.create_model(data, runtime().handler_types)


@blp.route("/models/<model_id>")
class ModelById(MethodView):
    @requires("read_models", 404)
    @blp.response(200, ModelSchema)
    def get(self, model_id: str) -> Any:
        """Read a model"""
        return registry.get_model(model_id)

    @requires("manage_models", 404, 413, 422)
    @blp.arguments(ModelUpdateSchema)
    @blp.response(200, ModelSchema)
    def put(self, data: dict[str, Any], model_id: str) -> Any:
        """Replace a model (an active model gets a new version)"""
        return registry.update_model(model_id, data, runtime().handler_types)

    @requires("manage_models", 404, 422)
    @blp.response(204)
    def delete(self, model_id: str) -> Any:
        """Delete a model, its versions and its subscriptions"""
        registry.delete_model(model_id)


@blp.route("/models/<model_id>/job_policy")
class ModelJobPolicy(MethodView):
    @requires("manage_models", 404, 413)
    @blp.arguments(JobPolicySchema)
    @blp.response(200, ModelSchema)
    def put(self, data: dict[str, Any], model_id: str) -> Any:
        """Replace a model's job policy (a PIE extension): timeouts and retries of the jobs
        created from now on; `{}` restores the settings' defaults. Creates no version and
        makes no subscription stale."""
        return registry.set_job_policy(model_id, data or None)
