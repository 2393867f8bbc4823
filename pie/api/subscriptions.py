"""/v2/models/{model_id}/event-subscriptions: chain models on training and inference events."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask.views import MethodView

from pie.api.base import Blueprint, current_principal, page_of, requires
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


def visible_clients() -> frozenset[str] | None:
    """The tenants whose own subscriptions (`subscribe: true` replays) the caller sees."""
    return current_principal().accessible_clients()


def visible_before_body(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse another tenant's subscription before the body is validated, as tenant checks
    are everywhere (admins see every subscription: nothing to check)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        clients = visible_clients()
        if clients is not None:
            subscriptions.get(kwargs["model_id"], kwargs["subscription_id"], clients)
        return fn(*args, **kwargs)

    return wrapper


@blp.route("/event-subscriptions")
class Subscriptions(MethodView):
    @requires("read_models", 404)
    @blp.response(200, SubscriptionSchema(many=True))
    @blp.paginate()
    def get(self, model_id: str, pagination_parameters: Any) -> Any:
        """List the subscriptions whose source is this model"""
        return page_of(
            pagination_parameters, subscriptions.list_for, model_id, clients=visible_clients()
        )

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
        return subscriptions.get(model_id, subscription_id, visible_clients())

    @requires("manage_models", 404, 413)
    @visible_before_body
    @blp.arguments(SubscriptionUpdateSchema)
    @blp.response(200, SubscriptionSchema)
    def put(self, data: dict[str, Any], model_id: str, subscription_id: str) -> Any:
        """Update a subscription's input, label or status (active re-arms a stale one)"""
        return subscriptions.update(model_id, subscription_id, data, visible_clients())

    @requires("manage_models", 404)
    @blp.response(204)
    def delete(self, model_id: str, subscription_id: str) -> Any:
        """Delete a subscription"""
        subscriptions.delete(model_id, subscription_id, visible_clients())
