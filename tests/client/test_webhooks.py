"""`client.webhooks` and `pie webhooks …` against a real `pie serve` whose deliverer may send
to loopback, each endpoint pointing at a real receiver on 127.0.0.1: events delivered and
seen in the delivery log, redelivered with the same webhook-id, the test event, every
signature checked with the `standardwebhooks` library."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from pie_client import Client, NotFoundError
from pie_client.types import Delivery, DeliveryAttempt, Webhook

from tests.client.conftest import ECHO, serve, unique
from tests.client.test_cli import Run, pie  # noqa: F401  (the fixture)
from tests.helpers import scoped
from tests.plugins.test_http_handler import Received, Receiver, ok, receiver  # noqa: F401
from tests.server import ServerProcess

T = TypeVar("T")


@pytest.fixture(scope="module")
def server(tmp_path_factory: Any) -> Iterator[ServerProcess]:
    yield from serve(
        tmp_path_factory,
        PIE_OUTBOUND_ALLOWED_HOSTS="127.0.0.1",
        PIE_WEBHOOK_RETRY_SCHEDULE="0,0.2,0.2",
    )


@pytest.fixture
def hook(receiver: Callable[..., Receiver]) -> Receiver:  # noqa: F811
    """A receiver answering 202 to every delivery."""
    return receiver(ok)


def make_model(api: Client) -> str:
    model_id = unique("m")
    handlers = {"training": ECHO, "inference": ECHO}
    api.models.create(id=model_id, name=model_id, description="", handlers=handlers)
    return model_id


def eventually(read: Callable[[], list[T]], count: int) -> list[T]:
    """What `read()` gives once it holds `count` items (or what it holds after 20 s)."""
    deadline = time.monotonic() + 20
    while True:
        found = read()
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def settled(api: Client, webhook_id: str, count: int, **filters: Any) -> list[Delivery]:
    """The endpoint's `delivered` deliveries, once there are `count` of them."""
    return eventually(
        lambda: list(api.webhooks.deliveries(webhook_id, status="delivered", **filters)), count
    )


def arrived(hook: Receiver, count: int) -> list[Received]:
    return eventually(lambda: list(hook.received), count)


def webhook_id_of(item: Received) -> str:
    return {k.lower(): v for k, v in item.headers.items()}["webhook-id"]


def test_a_delivery_is_logged_and_redelivered(api: Client, hook: Receiver) -> None:
    made = api.webhooks.create(url=hook.url, events=["model.created"], description="d")
    assert isinstance(made, Webhook) and made.secret and made.secret.startswith("whsec_")
    assert (made.url, made.events, made.status, made.client_id) == (
        hook.url,
        ["model.created"],
        "active",
        None,
    )
    model_id = make_model(api)
    (delivery,) = settled(api, made.webhook_id, 1, event_type="model.created")
    assert isinstance(delivery, Delivery) and delivery.attempts == 1
    assert delivery.response_status == 202 and delivery.delivered_at
    (first,) = arrived(hook, 1)
    event = first.verify(made.secret)
    assert event["type"] == "model.created" and event["data"]["id"] == model_id

    one = api.webhooks.delivery(made.webhook_id, delivery.delivery_id)
    assert one.payload and one.payload["data"]["id"] == model_id
    assert [type(a) for a in one.history] == [DeliveryAttempt]
    assert one.history[0].response_status == 202

    again = api.webhooks.redeliver(made.webhook_id, delivery.delivery_id)
    assert isinstance(again, Delivery) and again.delivery_id == delivery.delivery_id
    assert (again.status, again.attempts) == ("pending", 0)  # a fresh retry schedule
    first, second = arrived(hook, 2)
    assert webhook_id_of(second) == webhook_id_of(first)  # the same event, sent again
    assert second.body == first.body and second.verify(made.secret) == event
    history = eventually(
        lambda: api.webhooks.delivery(made.webhook_id, delivery.delivery_id).history, 2
    )
    assert [a.response_status for a in history] == [202, 202]
    resent = api.webhooks.delivery(made.webhook_id, delivery.delivery_id)
    assert (resent.status, resent.attempts, resent.response_status) == ("delivered", 1, 202)


def test_the_test_event_filters_and_pages(api: Client, hook: Receiver) -> None:
    made = api.webhooks.create(url=hook.url, events=["*"])
    tested = api.webhooks.test(made.webhook_id)
    assert isinstance(tested, Delivery) and tested.event_type == "webhook.test"
    assert tested.status == "delivered" and tested.response_status == 202
    make_model(api)
    make_model(api)
    settled(api, made.webhook_id, 3)
    pager = api.webhooks.deliveries(made.webhook_id, page_size=1)
    seen = [d.event_type for d in pager]
    assert seen == ["model.created", "model.created", "webhook.test"]  # newest first
    assert pager.total == 3
    assert (
        api.webhooks.deliveries(made.webhook_id, page_size=1).first(2)
        == list(api.webhooks.deliveries(made.webhook_id))[:2]
    )
    only = api.webhooks.deliveries(made.webhook_id, event_type="webhook.test")
    assert [d.delivery_id for d in only] == [tested.delivery_id]
    assert list(api.webhooks.deliveries(made.webhook_id, status="failed")) == []


def test_update_rotate_and_delete(api: Client, hook: Receiver) -> None:
    made = api.webhooks.create(url=hook.url, events=["model.created"], status="paused")
    assert made.status == "paused"
    changed = api.webhooks.update(
        made.webhook_id, url=hook.url, events=["model.deleted"], description="x", status="active"
    )
    assert (changed.events, changed.description, changed.status) == (
        ["model.deleted"],
        "x",
        "active",
    )
    assert changed.secret is None
    rotated = api.webhooks.rotate_secret(made.webhook_id)
    assert rotated.secret and rotated.secret != made.secret
    tested = api.webhooks.test(made.webhook_id)
    (item,) = arrived(hook, 1)
    assert item.verify(rotated.secret)["type"] == "webhook.test"  # both secrets sign
    assert item.verify(made.secret)["type"] == "webhook.test"
    assert tested.status == "delivered"
    api.webhooks.delete(made.webhook_id)
    with pytest.raises(NotFoundError):
        api.webhooks.get(made.webhook_id)
    with pytest.raises(NotFoundError):
        api.webhooks.deliveries(made.webhook_id).first()


def test_the_webhooks_verbs(
    pie: Run,  # noqa: F811
    api: Client,
    hook: Receiver,
) -> None:
    made = pie.json("webhooks", "create", hook.url, "--event", "model.created")
    webhook_id, secret = made["webhook_id"], made["secret"]
    assert secret.startswith("whsec_") and made["events"] == ["model.created"]
    assert pie.json("webhooks", "get", webhook_id)["secret"] is None
    assert webhook_id in [w["webhook_id"] for w in pie.json("webhooks", "list")]
    table = pie("webhooks", "list", "-o", "table").stdout
    assert table.split()[:3] == ["WEBHOOK_ID", "URL", "EVENTS"] and webhook_id in table

    # update changes only the fields given
    changed = pie.json("webhooks", "update", webhook_id, "--description", "ours")
    assert (changed["description"], changed["events"], changed["url"]) == (
        "ours",
        ["model.created"],
        hook.url,
    )
    changed = pie.json("webhooks", "update", webhook_id, "--event", "*", "--status", "paused")
    assert (changed["events"], changed["status"], changed["description"]) == (
        ["*"],
        "paused",
        "ours",
    )
    pie("webhooks", "update", webhook_id, "--status", "active")

    tested = pie.json("webhooks", "test", webhook_id)
    assert (tested["event_type"], tested["status"]) == ("webhook.test", "delivered")
    make_model(api)
    settled(api, webhook_id, 2)
    log = pie.json("webhooks", "deliveries", webhook_id, "--page-size", "1")
    assert [d["event_type"] for d in log] == ["model.created", "webhook.test"]
    assert pie.json("webhooks", "deliveries", webhook_id, "--limit", "1") == log[:1]
    only = pie.json("webhooks", "deliveries", webhook_id, "--event-type", "webhook.test")
    assert [d["delivery_id"] for d in only] == [tested["delivery_id"]]
    assert pie.json("webhooks", "deliveries", webhook_id, "--status", "failed") == []
    one = pie.json("webhooks", "deliveries", webhook_id, log[0]["delivery_id"])
    assert one["payload"]["type"] == "model.created" and one["history"]
    rows = pie("webhooks", "deliveries", webhook_id, "-o", "table").stdout
    assert rows.split()[:3] == ["DELIVERY_ID", "EVENT_TYPE", "STATUS"] and "model.created" in rows

    again = pie.json("webhooks", "redeliver", webhook_id, log[0]["delivery_id"])
    assert again["delivery_id"] == log[0]["delivery_id"]
    received = arrived(hook, 3)
    assert webhook_id_of(received[-1]) == webhook_id_of(received[-2])

    rotated = pie.json("webhooks", "rotate-secret", webhook_id)
    assert rotated["secret"].startswith("whsec_") and rotated["secret"] != secret

    # exit codes: validation, not found, permission
    pie("webhooks", "create", hook.url, "--event", "no.such", code=5)
    pie("webhooks", "create", "ftp://example.com/x", code=5)
    pie("webhooks", "redeliver", webhook_id, "no-such-delivery", code=3)
    pie("webhooks", "list", "--token", scoped("read_models"), code=4)
    pie("webhooks", "delete", webhook_id)
    pie("webhooks", "get", webhook_id, code=3)
    pie("webhooks", "test", webhook_id, code=3)
