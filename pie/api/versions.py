"""Model versions: create, list, read, and move through the status lifecycle."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from pie.api.base import Blueprint, current_principal, page_of, requires, runtime
from pie.schemas.versions import (
    ModelVersionSchema,
    NewVersionResultSchema,
    NewVersionSchema,
    StatusChangeSchema,
    TransitionResultSchema,
)
from pie.services import lifecycle, orchestration, triggers

blp = Blueprint(
    "versions",
    __name__,
    url_prefix="/v2/models/<model_id>",
    description="Model versions and their lifecycle",
)


@blp.route("/new_version")
class NewVersion(MethodView):
    @requires("manage_models", 404, 409, 413, 422)
    @blp.arguments(NewVersionSchema)
    @blp.response(201, NewVersionResultSchema)
    def post(self, data: dict[str, Any], model_id: str) -> Any:
        """Create a version snapshotting the model's current handlers"""
        model, version = lifecycle.create_version(model_id, data)
        return {"model": model, "version": version}


@blp.route("/versions")
class Versions(MethodView):
    @requires("read_models", 404)
    @blp.response(200, ModelVersionSchema(many=True))
    @blp.paginate()
    def get(self, model_id: str, pagination_parameters: Any) -> Any:
        """List a model's versions, newest first"""
        return page_of(pagination_parameters, lifecycle.list_versions, model_id)


@blp.route("/versions/<model_version>")
class VersionById(MethodView):
    @requires("read_models", 404)
    @blp.response(200, ModelVersionSchema)
    def get(self, model_id: str, model_version: str) -> Any:
        """Read a version"""
        return lifecycle.get_version(model_id, model_version)


@blp.route("/versions/<model_version>/new_status")
class NewStatus(MethodView):
    @requires("manage_models", 404, 413, 422)
    @blp.arguments(StatusChangeSchema)
    @blp.response(200, TransitionResultSchema)
    def post(self, data: dict[str, Any], model_id: str, model_version: str) -> Any:
        """Move a version to a new status (training → active fires subscriptions)"""
        model, version, events = orchestration.change_status(
            runtime(), model_id, model_version, data["status"]
        )
        # Jobs it started for tenants the caller cannot see are not named to it.
        clients = current_principal().accessible_clients()
        events = triggers.visible_events(events, clients)
        return {"model": model, "version": version, "triggered_events": events}
