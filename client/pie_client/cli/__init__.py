"""The `pie` verbs for clients of a PIE server: a thin layer of click commands over
pie_client, one module per resource, output formatting in output.py.

Installed beside the server, they are verbs of the server's own `pie` command (pie/cli.py
registers them); installed alone, `python -m pie_client` is the same command."""

from __future__ import annotations

import click

from pie_client.cli.jobs import jobs
from pie_client.cli.login import login
from pie_client.cli.registry import models, versions
from pie_client.cli.services import assignments, services
from pie_client.cli.subscriptions import subscriptions
from pie_client.cli.tenants import clients, domains, features
from pie_client.cli.webhooks import webhooks

COMMANDS: tuple[click.Command, ...] = (
    login,
    models,
    versions,
    jobs,
    subscriptions,
    webhooks,
    clients,
    domains,
    features,
    services,
    assignments,
)


def register(group: click.Group) -> None:
    """Add the client verbs to a click group (the server's `pie`)."""
    for command in COMMANDS:
        group.add_command(command)


@click.group(context_settings={"help_option_names": ["-h", "--help"]}, no_args_is_help=True)
@click.version_option(
    None, "-V", "--version", package_name="pie-client", message="%(package)s %(version)s"
)
def main() -> None:
    """PIE's client verbs (the `pie` command of a client-only install).

    Connection: --url/--token, else PIE_URL/PIE_TOKEN, else the profile `pie login` saved."""


register(main)
