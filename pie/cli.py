"""The `pie` command: serve | worker | token | db | plugins | openapi."""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import FlaskGroup, with_appcontext

log = logging.getLogger(__name__)


def _create_app() -> Flask:
    from pie import create_app

    return create_app()


@click.group(
    cls=FlaskGroup,
    create_app=_create_app,
    add_default_commands=False,
    add_version_option=False,
    set_debug_flag=False,
    load_dotenv=False,
)
def main() -> None:
    """PIE: a self-hosted model registry and job orchestrator."""


@main.command("serve", with_appcontext=False)  # builds its own app(s)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to bind.")
@click.option(
    "--workers",
    default=None,
    type=click.IntRange(min=1),
    help="Worker processes [default: one per CPU core].",
)
@click.option(
    "--threads",
    default=4,
    show_default=True,
    type=click.IntRange(min=1),
    help="Threads per worker process.",
)
def serve(host: str, port: int, workers: int | None, threads: int) -> None:
    """Run the API on a production WSGI server (gunicorn)."""
    from pie import config
    from pie.server import metrics_directory, run

    public_host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    os.environ.setdefault("PIE_PUBLIC_URL", f"http://{public_host}:{port}")
    grace = config.load()["PIE_SHUTDOWN_GRACE_SECONDS"]
    with metrics_directory():  # before the app imports prometheus_client, and the fork
        from pie import create_app
        from pie.db import close_all

        create_app({"PIE_EMBEDDED_WORKER": False})  # applies migrations once, before the fork
        close_all()  # no connection may be shared with the forked workers
        run(f"{host}:{port}", workers or os.cpu_count() or 1, threads, grace)


@main.command("worker", with_appcontext=False)  # builds its own app(s)
@click.option(
    "--interval",
    default=None,
    type=float,
    help="Seconds between recovery passes [default: PIE_RECOVERY_INTERVAL_SECONDS].",
)
@click.option(
    "--metrics-port",
    default=None,
    type=click.IntRange(min=1, max=65535),
    help="Serve Prometheus metrics at /metrics on this port [default: none].",
)
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="Address for --metrics-port."
)
def worker(interval: float | None, metrics_port: int | None, metrics_host: str) -> None:
    """Run the dispatch recovery loop on its own (safe beside other workers and servers)."""
    import signal

    from pie import create_app, metrics

    app = create_app({"PIE_EMBEDDED_WORKER": False})
    runtime = app.extensions["pie"]
    grace = app.config["PIE_SHUTDOWN_GRACE_SECONDS"]

    def stop(signum: int, frame: object) -> None:
        log.info("pie worker: %s; stopping", signal.Signals(signum).name)
        runtime.dispatcher.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if metrics_port:
        metrics.serve_standalone(metrics_port, metrics_host)
    log.info("pie worker: recovery loop running")
    runtime.dispatcher.run_recovery(interval)
    if not close_within(runtime, grace):
        log.warning(
            "pie worker: jobs still running after %ss (PIE_SHUTDOWN_GRACE_SECONDS); "
            "leaving them to the recovery loop of another process",
            grace,
        )
        logging.shutdown()
        os._exit(0)  # the pool's threads would otherwise hold the interpreter open
    log.info("pie worker: stopped")


def close_within(runtime: Any, seconds: float) -> bool:
    """Close the runtime (running in-process jobs finish, queued ones stay pending); False
    when that takes longer than `seconds`."""
    closer = threading.Thread(target=runtime.close, name="pie-close", daemon=True)
    closer.start()
    closer.join(seconds)
    return not closer.is_alive()


@main.command("token")
@click.option("--admin", is_flag=True, help="Grant every permission on every tenant.")
@click.option("--client-id", default=None, help="The tenant a machine token belongs to.")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="A scope, e.g. streamline/read_models (repeatable; the prefix is optional).",
)
@click.option(
    "--ttl",
    default=3600,
    show_default=True,
    type=click.IntRange(min=1),
    help="Lifetime in seconds.",
)
@click.option("--subject", default="pie-cli", show_default=True)
@with_appcontext
def token(
    admin: bool, client_id: str | None, scopes: tuple[str, ...], ttl: int, subject: str
) -> None:
    """Print a signed HS256 token."""
    from pie.auth import ADMIN_SCOPE, SCOPE_PREFIX

    names = [s if s.startswith(SCOPE_PREFIX) else SCOPE_PREFIX + s for s in scopes]
    if admin:
        names.append(ADMIN_SCOPE)
    if not names:
        raise click.UsageError("give --admin or at least one --scope")
    claims: dict[str, object] = {"sub": subject, "scope": " ".join(dict.fromkeys(names))}
    if client_id:
        claims["client_id"] = client_id
    click.echo(current_app.extensions["pie"].verifier.mint(claims, ttl))


@main.command("plugins")
@with_appcontext
def plugins() -> None:
    """List loaded plugins, handler types and in-process implementations."""
    from pie.plugin_manager import describe

    runtime = current_app.extensions["pie"]
    click.echo(
        json.dumps(
            {
                "plugins": [{"name": n, "module": m} for n, m in describe(runtime.pm)],
                "handler_types": sorted(runtime.handler_types),
                "in_process_handlers": sorted(runtime.in_process_handlers),
            },
            indent=2,
        )
    )


def init_app(app: Flask) -> None:
    """Commands that live on the app (flask-smorest adds `openapi`, db.py adds `db`)."""
