"""`pie login`: save a server and token as a named profile."""

from __future__ import annotations

import sys

import click

from pie_client.cli.common import reported_errors


@click.command("login")
@click.option("--url", required=True, help="The server, e.g. http://127.0.0.1:8000.")
@click.option("--token", default=None, help="A bearer token [default: asked on a terminal].")
@click.option("--profile", default="default", show_default=True, help="The profile's name.")
def login(url: str, token: str | None, profile: str) -> None:
    """Check the server answers, then save URL and token as a profile (the current one).

    The config file (PIE_CONFIG, else ~/.config/pie/config.json) is readable by its owner
    only. PIE_URL and PIE_TOKEN, when set, still win over any profile."""
    from pie_client.config import save_profile
    from pie_client.transport import Transport

    if token is None and sys.stdin.isatty():
        token = click.prompt("Token", hide_input=True, default="", show_default=False) or None
    with reported_errors():
        health = Transport(url, retries=0).request("GET", "/v2/health").data
        path = save_profile(profile, url, token)
    version = health.get("version") if isinstance(health, dict) else None
    click.echo(
        f"saved profile {profile!r} in {path}: {url} (PIE {version or 'of unknown version'})"
    )
