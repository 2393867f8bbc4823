"""`pie webhooks …`: webhook endpoints, their delivery logs, redelivery and test events."""

from __future__ import annotations

import click

from pie_client.cli.common import api_command, client
from pie_client.cli.output import emit
from pie_client.cli.registry import limit, page_size

events_option = click.option(
    "--event",
    "events",
    multiple=True,
    help="An event type to receive (repeat it), or '*' for every one.",
)
description_option = click.option("--description", default=None)


@click.group("webhooks")
def webhooks() -> None:
    """Webhook endpoints: list, get, create, update, delete, rotate-secret, deliveries,
    redeliver, test."""


@webhooks.command("list")
@page_size
@limit
@api_command
def webhooks_list(page_size: int, limit: int | None) -> None:
    """The endpoints this token manages."""
    emit(client().webhooks.list(page_size=page_size).first(limit))


@webhooks.command("get")
@click.argument("webhook_id")
@api_command
def webhooks_get(webhook_id: str) -> None:
    """One endpoint."""
    emit(client().webhooks.get(webhook_id))


@webhooks.command("create")
@click.argument("target", metavar="ENDPOINT_URL")
@events_option
@description_option
@click.option("--status", type=click.Choice(["active", "paused"]), default=None)
@click.option("--client", "client_id", default=None, help="The client whose events it gets.")
@api_command
def webhooks_create(
    target: str,
    events: tuple[str, ...],
    description: str | None,
    status: str | None,
    client_id: str | None,
) -> None:
    """Make an endpoint that PIE POSTs signed events to at ENDPOINT_URL (every event unless
    --event says which); the answer holds its `secret`, shown only here.

    (--url is the PIE server's, as for every verb.)"""
    emit(
        client().webhooks.create(
            url=target,
            events=list(events) or ["*"],
            description=description,
            status=status,
            client_id=client_id,
        )
    )


@webhooks.command("update")
@click.argument("webhook_id")
@click.option("--endpoint-url", "target", default=None, help="A new ENDPOINT_URL.")
@events_option
@description_option
@click.option("--status", type=click.Choice(["active", "paused", "disabled"]), default=None)
@api_command
def webhooks_update(
    webhook_id: str,
    target: str | None,
    events: tuple[str, ...],
    description: str | None,
    status: str | None,
) -> None:
    """Change an endpoint: the options given replace those fields, the others stay
    (--status active re-enables a disabled one)."""
    api = client()
    current = api.webhooks.get(webhook_id)
    emit(
        api.webhooks.update(
            webhook_id,
            url=target or current.url,
            events=list(events) or current.events,
            description=current.description if description is None else description,
            status=status,
        )
    )


@webhooks.command("delete")
@click.argument("webhook_id")
@api_command
def webhooks_delete(webhook_id: str) -> None:
    """Delete an endpoint and its delivery log."""
    client().webhooks.delete(webhook_id)


@webhooks.command("rotate-secret")
@click.argument("webhook_id")
@api_command
def webhooks_rotate_secret(webhook_id: str) -> None:
    """A new secret (shown only here); the old one also signs for 24 hours."""
    emit(client().webhooks.rotate_secret(webhook_id))


@webhooks.command("deliveries")
@click.argument("webhook_id")
@click.argument("delivery_id", required=False)
@click.option("--status", type=click.Choice(["pending", "delivered", "failed"]), default=None)
@click.option("--event-type", default=None)
@page_size
@limit
@api_command
def webhooks_deliveries(
    webhook_id: str,
    delivery_id: str | None,
    status: str | None,
    event_type: str | None,
    page_size: int,
    limit: int | None,
) -> None:
    """An endpoint's delivery log, newest first; with DELIVERY_ID, that delivery with its
    attempts and payload."""
    api = client()
    if delivery_id:
        emit(api.webhooks.delivery(webhook_id, delivery_id))
        return
    found = api.webhooks.deliveries(
        webhook_id, status=status, event_type=event_type, page_size=page_size
    )
    emit(found.first(limit))


@webhooks.command("redeliver")
@click.argument("webhook_id")
@click.argument("delivery_id")
@api_command
def webhooks_redeliver(webhook_id: str, delivery_id: str) -> None:
    """Send a delivery again now (same webhook-id, a fresh retry schedule)."""
    emit(client().webhooks.redeliver(webhook_id, delivery_id))


@webhooks.command("test")
@click.argument("webhook_id")
@api_command
def webhooks_test(webhook_id: str) -> None:
    """Send a webhook.test event now; prints the attempt's outcome."""
    emit(client().webhooks.test(webhook_id))
