"""`client.webhooks`: webhook endpoints, their delivery logs, redelivery and test events."""

from __future__ import annotations

import builtins

from pie_client.pagination import Pager
from pie_client.resources.base import Resource, fields, path
from pie_client.types import Delivery, Webhook


def url(*rest: str) -> str:
    return path("webhooks", *rest)


class Webhooks(Resource):
    def list(self, *, page_size: int = 100) -> Pager[Webhook]:
        return self._list(url(), Webhook.from_dict, page_size)

    def get(self, webhook_id: str) -> Webhook:
        return self._call("GET", url(webhook_id), Webhook.from_dict)

    def create(
        self,
        *,
        url: str,
        events: builtins.list[str],
        description: str | None = None,
        status: str | None = None,
        client_id: str | None = None,
    ) -> Webhook:
        """The new endpoint; its `secret` is shown only in this answer."""
        body = fields(
            url=url, events=events, description=description, status=status, client_id=client_id
        )
        return self._call("POST", path("webhooks"), Webhook.from_dict, body)

    def update(
        self,
        webhook_id: str,
        *,
        url: str,
        events: builtins.list[str],
        description: str | None = None,
        status: str | None = None,
    ) -> Webhook:
        body = fields(url=url, events=events, description=description, status=status)
        return self._call("PUT", path("webhooks", webhook_id), Webhook.from_dict, body)

    def delete(self, webhook_id: str) -> None:
        self._delete(url(webhook_id))

    def rotate_secret(self, webhook_id: str) -> Webhook:
        """A new `secret` (shown only here); the old one also signs for 24 hours."""
        return self._call("POST", url(webhook_id, "rotate-secret"), Webhook.from_dict)

    def test(self, webhook_id: str) -> Delivery:
        """Send a webhook.test event now; the attempt's outcome."""
        return self._call("POST", url(webhook_id, "test"), Delivery.from_dict)

    def deliveries(
        self,
        webhook_id: str,
        *,
        status: str | None = None,
        event_type: str | None = None,
        page_size: int = 100,
    ) -> Pager[Delivery]:
        params = fields(status=status, event_type=event_type)
        return self._list(url(webhook_id, "deliveries"), Delivery.from_dict, page_size, params)

    def delivery(self, webhook_id: str, delivery_id: str) -> Delivery:
        return self._call("GET", url(webhook_id, "deliveries", delivery_id), Delivery.from_dict)

    def redeliver(self, webhook_id: str, delivery_id: str) -> Delivery:
        where = url(webhook_id, "deliveries", delivery_id, "redeliver")
        return self._call("POST", where, Delivery.from_dict)
