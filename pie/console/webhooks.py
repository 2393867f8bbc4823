"""Webhooks: the endpoints this token manages, one endpoint's delivery log (by status and
event type), one delivery's attempts, and test-fire, redeliver, pause and resume. Each page
and action takes the API's permission (manage_webhooks) and the API's tenant reach
(pie.api.webhooks.reach); secrets are never shown."""

from __future__ import annotations

import json
from typing import Any

from flask import redirect, request, url_for

from pie.api.base import requires, runtime
from pie.api.webhooks import reach
from pie.console.base import LIST_LIMIT, bp, load, render
from pie.errors import BadRequest
from pie.schemas.webhooks import DELIVERY_STATUSES, DeliveryFilterSchema, WebhookUpdateSchema
from pie.services import deliveries, webhooks
from pie.services.outbox import EVENT_TYPES, TEST_EVENT

FILTERS = ("status", "event_type")
# What the pause and resume buttons move an endpoint to (a disabled one resumes as active).
MOVES = {"paused": "active", "active": "paused", "disabled": "active"}


@bp.route("/webhooks")
@requires("manage_webhooks")
def webhooks_page() -> Any:
    """As GET /v2/webhooks: the endpoints this token manages, one statement."""
    found = list(webhooks.listed(reach()).limit(LIST_LIMIT))
    return render("webhooks.html", webhooks=found, limit=LIST_LIMIT)


@bp.route("/webhooks/<webhook_id>")
@requires("manage_webhooks")
def webhook(webhook_id: str) -> Any:
    """The endpoint (as GET /v2/webhooks/{id}) and its delivery log (as GET …/deliveries)."""
    found = webhooks.get(webhook_id, reach())
    sent = {k: v for k, v in request.args.items() if k in FILTERS and v.strip()}
    filters = load(DeliveryFilterSchema(), sent)
    log = list(deliveries.listed(webhook_id, filters).limit(LIST_LIMIT))
    return render(
        "webhook.html",
        webhook=found,
        deliveries=log,
        filters={name: request.args.get(name, "") for name in FILTERS},
        statuses=DELIVERY_STATUSES,
        event_types=(*EVENT_TYPES, TEST_EVENT),
        move=MOVES.get(found.status),
        limit=LIST_LIMIT,
    )


@bp.route("/webhooks/<webhook_id>/deliveries/<delivery_id>")
@requires("manage_webhooks")
def delivery(webhook_id: str, delivery_id: str) -> Any:
    """One delivery with its attempts and the payload, as GET …/deliveries/{id}."""
    endpoint = webhooks.get(webhook_id, reach())
    found = deliveries.get(webhook_id, delivery_id)
    return render("delivery.html", webhook=endpoint, delivery=found, payload=json.loads(found.body))


@bp.route("/webhooks/<webhook_id>/test", methods=["POST"])
@requires("manage_webhooks")
def webhook_test(webhook_id: str) -> Any:
    """Test-fire as POST /v2/webhooks/{id}/test: a webhook.test event sent now."""
    sent = runtime().deliverer.test_fire(webhooks.get(webhook_id, reach()))
    return redirect(
        url_for("console.delivery", webhook_id=webhook_id, delivery_id=sent.delivery_id),
        code=303,
    )


@bp.route("/webhooks/<webhook_id>/deliveries/<delivery_id>/redeliver", methods=["POST"])
@requires("manage_webhooks")
def redeliver(webhook_id: str, delivery_id: str) -> Any:
    """Redeliver as POST …/deliveries/{id}/redeliver (409 while an attempt is in flight)."""
    webhooks.get(webhook_id, reach())
    deliveries.redeliver(webhook_id, delivery_id)
    return redirect(
        url_for("console.delivery", webhook_id=webhook_id, delivery_id=delivery_id), code=303
    )


@bp.route("/webhooks/<webhook_id>/status", methods=["POST"])
@requires("manage_webhooks")
def webhook_status(webhook_id: str) -> Any:
    """Pause or resume: PUT /v2/webhooks/{id} with the endpoint as it is but its status."""
    wanted = request.form.get("status")
    if wanted not in ("active", "paused"):
        raise BadRequest("status: pause (paused) or resume (active) only")
    current = webhooks.get(webhook_id, reach())
    data = load(
        WebhookUpdateSchema(),
        {
            "url": current.url,
            "events": current.events,
            "description": current.description,
            "status": wanted,
        },
    )
    webhooks.update(webhook_id, data, reach(), runtime().deliverer.allowed)
    return redirect(url_for("console.webhook", webhook_id=webhook_id), code=303)
