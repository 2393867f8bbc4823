"""/v2/models/{model_id}/event-subscriptions: chain models on training and inference events."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from pie.api.base import Blueprint, page_of, requires
from pie.schemas.subscriptions import (
    SubscriptionCreateSchema,
    SubscriptionSchema,
    SubscriptionUpdateSchema,
)
from pie.services import subscriptions

blp = Blueprint(
    "event_subscriptions",
    __name__,
    url_prefix="/v2/models/<model_id>",
    description="Event subscriptions",
)


@blp.route("/event-subscriptions")
class Subscriptions(MethodView):
    @requires("read_models", 404)
    @blp.response(200, SubscriptionSchema(many=True))
    @blp.paginate()
    def get(self, model_id: str, pagination_parameters: Any) -> Any:
        """List the subscriptions whose source is this model"""
        return page_of(pagination_parameters, subscriptions.list_for, model_id)

    @requires("manage_models", 404, 413, 422)
    @blp.arguments(SubscriptionCreateSchema)
    @blp.response(201, SubscriptionSchema)
    def post(self, data: dict[str, Any], model_id: str) -> Any:
        """Subscribe a target model to this model's events"""
        return subscriptions.create(model_id, data)


@blp.route("/event-subscriptions/<subscription_id>")
class SubscriptionById(MethodView):
    @requires("read_models", 404)
    @blp.response(200, SubscriptionSchema)
    def get(self, model_id: str, subscription_id: str) -> Any:
        """Read a subscription"""
        return subscriptions.get(model_id, subscription_id)

    @requires("manage_models", 404, 413)
    @blp.arguments(SubscriptionUpdateSchema)
    @blp.response(200, SubscriptionSchema)
    def put(self, data: dict[str, Any], model_id: str, subscription_id: str) -> Any:
        """Update a subscription's input, label or status (active re-arms a stale one)"""
        return subscriptions.update(model_id, subscription_id, data)

    @requires("manage_models", 404)
    @blp.response(204)
    def delete(self, model_id: str, subscription_id: str) -> Any:
        """Delete a subscription"""
        subscriptions.delete(model_id, subscription_id)
