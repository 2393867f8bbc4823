"""Helpers of the webhook tests: an app that may send to loopback, endpoints made through the
API, delivery passes run in the test's thread, and a receiver's deliveries verified with
the `standardwebhooks` library."""

from __future__ import annotations

import json
from typing import Any

from standardwebhooks import Webhook

from tests.helpers import ADMIN, Client
from tests.plugins.test_http_handler import Received

WEBHOOK_CONFIG = {
    "PIE_OUTBOUND_ALLOWED_HOSTS": ["127.0.0.1"],
    "PIE_WEBHOOK_RETRY_SCHEDULE": [0.0, 0.2, 0.2],
}


def hook_app(make_app: Any, **config: Any) -> tuple[Any, Client]:
    app = make_app({**WEBHOOK_CONFIG, **config})
    return app, Client(app.test_client())


def add_endpoint(
    client: Client, url: str, events: list[str] | None = None, token: str = ADMIN, **body: Any
) -> dict[str, Any]:
    r = client.post(
        "/v2/webhooks", json={"url": url, "events": events or ["*"], **body}, token=token
    )
    assert r.status_code == 201, r.get_json()
    return r.get_json()


def deliver(app: Any) -> int:
    """One delivery pass, its requests answered and recorded; how many it claimed."""
    return app.extensions["pie"].deliverer.deliver_once(wait_for_answers=True)


def deliver_all(app: Any, passes: int = 10) -> None:
    for _ in range(passes):
        if not deliver(app):
            return


def verified(received: list[Received], secret: str) -> list[dict[str, Any]]:
    """Every delivery's event, each signature checked by the standardwebhooks library."""
    return [Webhook(secret).verify(item.body, item.headers) for item in received]


def of_type(events: list[dict[str, Any]], event_type: str) -> list[dict[str, Any]]:
    return [event for event in events if event["type"] == event_type]


def deliveries(client: Client, webhook_id: str, query: str = "") -> list[dict[str, Any]]:
    r = client.get(f"/v2/webhooks/{webhook_id}/deliveries{query}")
    assert r.status_code == 200, r.get_json()
    return r.get_json()


def answer(status: int, headers: dict[str, str] | None = None) -> Any:
    return lambda received: (status, headers or {}, json.dumps({"status": status}).encode())
