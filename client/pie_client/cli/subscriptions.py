"""`pie subscriptions …`: a model's event subscriptions."""

from __future__ import annotations

import click

from pie_client.cli.common import api_command, body_call, client, json_object, read_document
from pie_client.cli.output import emit
from pie_client.cli.registry import limit, page_size


@click.group("subscriptions")
def subscriptions() -> None:
    """Event subscriptions: list, get, create, update, delete."""


@subscriptions.command("list")
@click.argument("model_id")
@page_size
@limit
@api_command
def subscriptions_list(model_id: str, page_size: int, limit: int | None) -> None:
    """The subscriptions whose source is the model."""
    emit(client().subscriptions.list(model_id, page_size=page_size).first(limit))


@subscriptions.command("get")
@click.argument("model_id")
@click.argument("subscription_id")
@api_command
def subscriptions_get(model_id: str, subscription_id: str) -> None:
    """One subscription."""
    emit(client().subscriptions.get(model_id, subscription_id))


@subscriptions.command("create")
@click.argument("model_id")
@click.option("-f", "--file", "source", required=True, help="The body (JSON or YAML, - stdin).")
@api_command
def subscriptions_create(model_id: str, source: str) -> None:
    """Subscribe a target model to this model's events."""
    body = read_document(source)
    emit(body_call(client().subscriptions.create, model_id, body=body, source=source))


@subscriptions.command("update")
@click.argument("model_id")
@click.argument("subscription_id")
@click.option("--status", type=click.Choice(["active", "paused", "stale"]), default=None)
@click.option("--label", default=None)
@click.option("--input", "input_", default=None, help="A stored input: JSON, or @file.")
@api_command
def subscriptions_update(
    model_id: str, subscription_id: str, status: str | None, label: str | None, input_: str | None
) -> None:
    """Change a subscription (--status active re-arms a stale one)."""
    stored = json_object(input_) if input_ else None
    emit(
        client().subscriptions.update(
            model_id, subscription_id, status=status, label=label, input=stored
        )
    )


@subscriptions.command("delete")
@click.argument("model_id")
@click.argument("subscription_id")
@api_command
def subscriptions_delete(model_id: str, subscription_id: str) -> None:
    """Delete a subscription."""
    client().subscriptions.delete(model_id, subscription_id)
