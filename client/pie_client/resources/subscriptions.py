"""`client.subscriptions`: a model's event subscriptions."""

from __future__ import annotations

from pie_client.pagination import Pager
from pie_client.resources.base import Resource, fields, path
from pie_client.types import JSON, Subscription


def url(model_id: str, *rest: str) -> str:
    return path("models", model_id, "event-subscriptions", *rest)


class Subscriptions(Resource):
    def list(self, model_id: str, *, page_size: int = 100) -> Pager[Subscription]:
        return self._list(url(model_id), Subscription.from_dict, page_size)

    def get(self, model_id: str, subscription_id: str) -> Subscription:
        return self._call("GET", url(model_id, subscription_id), Subscription.from_dict)

    def create(
        self,
        model_id: str,
        *,
        trigger_event: str,
        target_model_id: str,
        target_action: str,
        input_source: str,
        input: JSON | None = None,
        label: str | None = None,
    ) -> Subscription:
        body = fields(
            trigger_event=trigger_event,
            target_model_id=target_model_id,
            target_action=target_action,
            input_source=input_source,
            input=input,
            label=label,
        )
        return self._call("POST", url(model_id), Subscription.from_dict, body)

    def update(
        self,
        model_id: str,
        subscription_id: str,
        *,
        input: JSON | None = None,
        label: str | None = None,
        status: str | None = None,
    ) -> Subscription:
        body = fields(input=input, label=label, status=status)
        return self._call("PUT", url(model_id, subscription_id), Subscription.from_dict, body)

    def delete(self, model_id: str, subscription_id: str) -> None:
        self._delete(url(model_id, subscription_id))
