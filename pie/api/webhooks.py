"""/v2/webhooks: webhook endpoints, their delivery log, redelivery and test events (issue
17). A tenant's token manages its own client's endpoints; an admin's, every endpoint, and
only an admin makes a global one (it receives every client's events)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from pie import auth
from pie.api.base import Blueprint, current_principal, page_of, requires, runtime
from pie.errors import Forbidden
from pie.schemas.webhooks import (
    DeliveryFilterSchema,
    DeliverySchema,
    WebhookCreateSchema,
    WebhookSchema,
    WebhookUpdateSchema,
    WebhookWithSecretSchema,
)
from pie.services import deliveries, tenants, webhooks

blp = Blueprint(
    "webhooks",
    __name__,
    url_prefix="/v2/webhooks",
    description="Webhook endpoints: signed events, delivery log, redelivery (PIE extension)",
)
ONE = "/<webhook_id>"


def reach() -> frozenset[str] | None:
    """The clients whose endpoints this caller manages (None: every endpoint, an admin)."""
    return current_principal().accessible_clients()


def owner_for(principal: auth.Principal, asked: str | None) -> str | None:
    """The client a new endpoint belongs to: the one named, if the caller reaches it, else
    the tenant token's own client; None (global) only for an admin."""
    if principal.is_admin:
        return asked
    clients = principal.accessible_clients() or frozenset()
    if asked is not None:
        auth.require_tenant(principal, asked)
        return asked
    if len(clients) == 1:
        (only,) = clients
        return only
    if not clients:
        raise Forbidden(
            "a global webhook endpoint receives every client's events: only an admin's token "
            "makes one (a tenant's token makes its client's)"
        )
    raise Forbidden("this token belongs to several clients: name the endpoint's client_id")


def with_secret(row: Any, secret: str) -> Any:
    row.new_secret = secret
    return row


@blp.route("")
class Webhooks(MethodView):
    @requires("manage_webhooks")
    @blp.response(200, WebhookSchema(many=True))
    @blp.paginate()
    def get(self, pagination_parameters: Any) -> Any:
        """List the webhook endpoints this token manages"""
        return page_of(pagination_parameters, webhooks.list_for, reach())

    @requires("manage_webhooks", 404, 413, 422)
    @blp.arguments(WebhookCreateSchema)
    @blp.response(201, WebhookWithSecretSchema)
    def post(self, data: dict[str, Any]) -> Any:
        """Create a webhook endpoint; the answer holds its signing secret, shown only here"""
        owner = owner_for(current_principal(), data.get("client_id"))
        if owner is not None:
            tenants.ensure_client_active(owner)
        deliverer = runtime().deliverer
        row, secret = webhooks.create(data, owner, deliverer.box, deliverer.allowed)
        return with_secret(row, secret)


@blp.route(ONE)
class WebhookById(MethodView):
    @requires("manage_webhooks", 404)
    @blp.response(200, WebhookSchema)
    def get(self, webhook_id: str) -> Any:
        """Read a webhook endpoint"""
        return webhooks.get(webhook_id, reach())

    @requires("manage_webhooks", 404, 413, 422)
    @blp.arguments(WebhookUpdateSchema)
    @blp.response(200, WebhookSchema)
    def put(self, data: dict[str, Any], webhook_id: str) -> Any:
        """Replace an endpoint's url, events, description and status (active re-enables it)"""
        return webhooks.update(webhook_id, data, reach(), runtime().deliverer.allowed)

    @requires("manage_webhooks", 404)
    @blp.response(204)
    def delete(self, webhook_id: str) -> None:
        """Delete an endpoint and its delivery log"""
        webhooks.delete(webhook_id, reach())


@blp.route(f"{ONE}/rotate-secret")
class RotateSecret(MethodView):
    @requires("manage_webhooks", 404)
    @blp.response(200, WebhookWithSecretSchema)
    def post(self, webhook_id: str) -> Any:
        """Give the endpoint a new secret; the old one also signs for 24 hours"""
        row, secret = webhooks.rotate_secret(webhook_id, reach(), runtime().deliverer.box)
        return with_secret(row, secret)


@blp.route(f"{ONE}/test")
class TestEvent(MethodView):
    @requires("manage_webhooks", 404)
    @blp.response(200, DeliverySchema)
    def post(self, webhook_id: str) -> Any:
        """Send a webhook.test event now; the answer is the attempt's outcome"""
        return runtime().deliverer.test_fire(webhooks.get(webhook_id, reach()))


@blp.route(f"{ONE}/deliveries")
class Deliveries(MethodView):
    @requires("manage_webhooks", 404)
    @blp.arguments(DeliveryFilterSchema, location="query")
    @blp.response(200, DeliverySchema(many=True))
    @blp.paginate()
    def get(self, filters: dict[str, Any], webhook_id: str, pagination_parameters: Any) -> Any:
        """An endpoint's delivery log, newest first, by status and event type"""
        webhooks.get(webhook_id, reach())
        return page_of(pagination_parameters, deliveries.list_for, webhook_id, filters)


@blp.route(f"{ONE}/deliveries/<delivery_id>")
class DeliveryById(MethodView):
    @requires("manage_webhooks", 404)
    @blp.response(200, DeliverySchema)
    def get(self, webhook_id: str, delivery_id: str) -> Any:
        """Read one delivery with its attempts"""
        webhooks.get(webhook_id, reach())
        return deliveries.get(webhook_id, delivery_id)


@blp.route(f"{ONE}/deliveries/<delivery_id>/redeliver")
class Redeliver(MethodView):
    @requires("manage_webhooks", 404, 409)
    @blp.response(202, DeliverySchema)
    def post(self, webhook_id: str, delivery_id: str) -> Any:
        """Send a delivery again (same webhook-id), with a fresh retry schedule"""
        webhooks.get(webhook_id, reach())
        return deliveries.redeliver(webhook_id, delivery_id)
