"""`pie login`: save a server and token as a named profile."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from pie_client.cli.common import reported_errors

if TYPE_CHECKING:
    from pie_client.transport import Transport


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

    if token is None:
        if sys.stdin.isatty():
            token = click.prompt("Token", hide_input=True, default="", show_default=False)
        else:  # `pie token --admin | pie login --url …`
            token = sys.stdin.readline()
    token = (token or "").strip()
    if not token:
        raise click.UsageError("no token: pass --token, pipe one in, or type it when asked")
    with reported_errors():
        health = Transport(url, retries=0).request("GET", "/v2/health").data
        check_token(Transport(url, token=token, retries=0))
        path = save_profile(profile, url, token)
    version = health.get("version") if isinstance(health, dict) else None
    click.echo(
        f"saved profile {profile!r} in {path}: {url} (PIE {version or 'of unknown version'})"
    )


def check_token(transport: Transport) -> None:
    """A token the server refuses (401: malformed, expired, wrong signature) is not saved; a
    403 is a valid token that may not read models, which is fine."""
    from pie_client.errors import PieError

    try:
        transport.request("GET", "/v2/models", params={"page_size": 1})
    except PieError as exc:
        if getattr(exc, "status", None) == 401:
            raise
