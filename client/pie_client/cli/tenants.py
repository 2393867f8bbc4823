"""`pie clients …`, `pie domains …` and `pie features …`."""

from __future__ import annotations

import click

from pie_client.cli.common import api_command, client, read_document
from pie_client.cli.output import emit
from pie_client.cli.registry import limit, page_size

client_status = click.option("--status", type=click.Choice(["active", "suspended"]), default=None)


@click.group("clients")
def clients() -> None:
    """Clients (tenants): list, get, create, update."""


@clients.command("list")
@page_size
@limit
@api_command
def clients_list(page_size: int, limit: int | None) -> None:
    """The clients this token can access."""
    emit(client().clients.list(page_size=page_size).first(limit))


@clients.command("get")
@click.argument("client_id")
@api_command
def clients_get(client_id: str) -> None:
    """One client."""
    emit(client().clients.get(client_id))


@clients.command("create")
@click.argument("client_id")
@click.option("--name", required=True)
@client_status
@api_command
def clients_create(client_id: str, name: str, status: str | None) -> None:
    """Create a client (admin)."""
    emit(client().clients.create(client_id, name, status=status))


@clients.command("update")
@click.argument("client_id")
@click.option("--name", default=None)
@client_status
@api_command
def clients_update(client_id: str, name: str | None, status: str | None) -> None:
    """Rename, suspend or re-activate a client (admin)."""
    emit(client().clients.update(client_id, name=name, status=status))


@click.group("domains")
def domains() -> None:
    """A client's domains: list, get, create, update."""


@domains.command("list")
@click.argument("client_id")
@page_size
@limit
@api_command
def domains_list(client_id: str, page_size: int, limit: int | None) -> None:
    """A client's domains."""
    emit(client().domains.list(client_id, page_size=page_size).first(limit))


@domains.command("get")
@click.argument("client_id")
@click.argument("domain_id")
@api_command
def domains_get(client_id: str, domain_id: str) -> None:
    """One domain."""
    emit(client().domains.get(client_id, domain_id))


@domains.command("create")
@click.argument("client_id")
@click.argument("domain_id", required=False)
@click.option("-f", "--file", "source", default=None, help="The feature definitions (JSON, YAML).")
@click.option("--status", type=click.Choice(["active", "inactive"]), default=None)
@api_command
def domains_create(
    client_id: str, domain_id: str | None, source: str | None, status: str | None
) -> None:
    """Create a domain (its id generated when not given) with its feature contract."""
    features = read_document(source) if source else None
    emit(client().domains.create(client_id, domain_id=domain_id, features=features, status=status))


@domains.command("update")
@click.argument("client_id")
@click.argument("domain_id")
@click.option("--status", type=click.Choice(["active", "inactive"]), required=True)
@api_command
def domains_update(client_id: str, domain_id: str, status: str) -> None:
    """Activate or deactivate a domain."""
    emit(client().domains.update(client_id, domain_id, status=status))


@click.group("features")
def features() -> None:
    """A domain's feature contract: list, replace."""


@features.command("list")
@click.argument("client_id")
@click.argument("domain_id")
@api_command
def features_list(client_id: str, domain_id: str) -> None:
    """The domain's feature definitions."""
    emit(client().features.list(client_id, domain_id))


@features.command("replace")
@click.argument("client_id")
@click.argument("domain_id")
@click.option("-f", "--file", "source", required=True, help="The definitions (JSON or YAML).")
@api_command
def features_replace(client_id: str, domain_id: str, source: str) -> None:
    """Replace the definitions; the report names services needing re-initialisation."""
    emit(client().features.replace(client_id, domain_id, read_document(source)))
