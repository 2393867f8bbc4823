"""`pie models …` and `pie versions …`."""

from __future__ import annotations

import click

from pie_client.cli.common import api_command, body_call, client, read_document
from pie_client.cli.output import emit

page_size = click.option("--page-size", default=100, show_default=True, help="Items per request.")
limit = click.option("--limit", type=int, default=None, help="Stop after this many items.")
body_file = click.option(
    "-f", "--file", "source", required=True, help="The body: a JSON or YAML file, - for stdin."
)


READ_ONLY = ("id", "status", "latest_version", "created_at", "updated_at")


@click.group("models")
def models() -> None:
    """Models: list, get, create, update, delete, job-policy."""


@models.command("list")
@page_size
@limit
@api_command
def models_list(page_size: int, limit: int | None) -> None:
    """Every model (every page, or the first --limit; read as needed)."""
    emit(client().models.list(page_size=page_size).first(limit))


@models.command("get")
@click.argument("model_id")
@api_command
def models_get(model_id: str) -> None:
    """One model."""
    emit(client().models.get(model_id))


@models.command("create")
@body_file
@api_command
def models_create(source: str) -> None:
    """Register a model from a file shaped like the POST /v2/models body."""
    emit(body_call(client().models.create, body=read_document(source), source=source))


@models.command("update")
@click.argument("model_id")
@body_file
@api_command
def models_update(model_id: str, source: str) -> None:
    """Replace a model (an active one gets a new pending version).

    The file may be what `pie models get -o yaml` printed, edited: the fields the server
    sets (id, status, latest_version, created_at, updated_at) are left out."""
    body = read_document(source)
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k not in READ_ONLY}
    emit(body_call(client().models.update, model_id, body=body, source=source))


@models.command("delete")
@click.argument("model_id")
@api_command
def models_delete(model_id: str) -> None:
    """Delete a model, its versions and subscriptions."""
    client().models.delete(model_id)


@models.command("job-policy")
@click.argument("model_id")
@body_file
@api_command
def models_job_policy(model_id: str, source: str) -> None:
    """Replace the model's job policy ({} restores the defaults)."""
    emit(client().models.set_job_policy(model_id, read_document(source)))


@click.group("versions")
def versions() -> None:
    """Model versions: list, get, create, set-status."""


@versions.command("list")
@click.argument("model_id")
@page_size
@limit
@api_command
def versions_list(model_id: str, page_size: int, limit: int | None) -> None:
    """A model's versions, newest first."""
    emit(client().versions.list(model_id, page_size=page_size).first(limit))


@versions.command("get")
@click.argument("model_id")
@click.argument("version")
@api_command
def versions_get(model_id: str, version: str) -> None:
    """One version."""
    emit(client().versions.get(model_id, version))


@versions.command("create")
@click.argument("model_id")
@click.option("--version", default=None, help="The version string [default: the next integer].")
@click.option("--description", default=None)
@click.option("-f", "--file", "source", default=None, help="More of the body (JSON or YAML).")
@api_command
def versions_create(
    model_id: str, version: str | None, description: str | None, source: str | None
) -> None:
    """A new pending version snapshotting the model's handlers."""
    body = read_document(source) if source else {}
    if isinstance(body, dict):
        body.update(
            {k: v for k, v in {"version": version, "description": description}.items() if v}
        )
    emit(
        body_call(
            client().versions.create, model_id, body=body, source=source or "the options"
        ).version
    )


@versions.command("set-status")
@click.argument("model_id")
@click.argument("version")
@click.argument("status", type=click.Choice(["pending", "training", "active", "failed"]))
@api_command
def versions_set_status(model_id: str, version: str, status: str) -> None:
    """Move a version through its lifecycle (training -> active fires subscriptions)."""
    emit(client().versions.set_status(model_id, version, status))
