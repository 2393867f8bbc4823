"""/v2/models/{model_id}/event-subscriptions: chain models on training and inference events."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask.views import MethodView

from pie.api.base import (
    Blueprint,
    current_principal,
    page_of,
    require_global_change,
    requires,
    runtime,
)
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


def changeable_before_body(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Refuse, before the body is validated (as tenant checks are everywhere), another
    tenant's subscription, and a global one to a tenant's token: global subscriptions are
    made, changed and deleted by operators and admins (admins reach every subscription:
    nothing to check)."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        principal = current_principal()
        if not principal.is_admin:
            clients = principal.accessible_clients()
            sub = subscriptions.get(kwargs["model_id"], kwargs["subscription_id"], clients)
            require_global_change(
                principal,
                sub.client_id,
                f"subscription '{sub.id}' is global: only an operator's token (one of no "
                "client) or an admin's changes or deletes it",
            )
        return fn(*args, **kwargs)

    return wrapper


def owner_before_body(fn: Callable[..., Any]) -> Callable[..., Any]:
    """The client a new subscription belongs to (`owner`), decided by the token before the
    body is validated: a tenant's token makes its client's own, an operator's or an admin's
    a global one."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return fn(*args, owner=current_principal().subscription_owner(), **kwargs)

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
    @owner_before_body
    @blp.arguments(SubscriptionCreateSchema)
    @blp.response(201, SubscriptionSchema)
    def post(self, data: dict[str, Any], model_id: str, owner: str | None) -> Any:
        """Subscribe a target model to this model's events (a tenant's token: its own)"""
        tenant = {"client_id": owner} if owner else None
        limit = runtime().config[subscriptions.MAX_OWNED]
        return subscriptions.create(model_id, data, tenant, max_owned=limit)


@blp.route("/event-subscriptions/<subscription_id>")
class SubscriptionById(MethodView):
    @requires("read_models", 404)
    @blp.response(200, SubscriptionSchema)
    def get(self, model_id: str, subscription_id: str) -> Any:
        """Read a subscription"""
        return subscriptions.get(model_id, subscription_id, visible_clients())

    @requires("manage_models", 404, 413)
    @changeable_before_body
    @blp.arguments(SubscriptionUpdateSchema)
    @blp.response(200, SubscriptionSchema)
    def put(self, data: dict[str, Any], model_id: str, subscription_id: str) -> Any:
        """Update a subscription's input, label or status (active re-arms a stale one)"""
        return subscriptions.update(model_id, subscription_id, data, visible_clients())

    @requires("manage_models", 404)
    @changeable_before_body
    @blp.response(204)
    def delete(self, model_id: str, subscription_id: str) -> Any:
        """Delete a subscription"""
        subscriptions.delete(model_id, subscription_id, visible_clients())
